"""AG Grid's server-side requests as SQL: filterModel -> WHERE, sortModel -> ORDER BY, rows -> LIMIT/OFFSET.

The same answers as dashboard.aggregate.filter_sort and query_rows give over a DataFrame
(whose docstrings tell the grid's models), from a query over the stores instead: a page of a
million-row table costs a query, not the table in memory.  The models come from the browser and
may be crafted: a column is used only when it is in the grid's fixed list of columns (its
identifier is then the list's, never the request's text), every value is a bound parameter,
and what is not shaped as the grid sends it filters or sorts nothing, as in aggregate.
"""

from __future__ import annotations

from dashboard.aggregate import MAX_FILTER_CONDITIONS, _filter_number
from dashboard.catalog import identifier

NUMBER_SQL = {"equals": "=", "notEqual": "<>", "lessThan": "<", "lessThanOrEqual": "<=", "greaterThan": ">", "greaterThanOrEqual": ">="}
# Each takes the column's text, lower-cased, and the filter's text, lower-cased (AG Grid's text
# filter ignores case): functions, never LIKE, so % and _ in the filter are only characters.
TEXT_SQL = {
    "contains": "contains({text}, ?)", "notContains": "NOT contains({text}, ?)",
    "equals": "{text} = ?", "notEqual": "{text} <> ?",
    "startsWith": "starts_with({text}, ?)", "endsWith": "ends_with({text}, ?)",
}
TRUE = ("TRUE", [])


def where_clause(filter_model, columns) -> tuple[str, list]:
    """(SQL condition, its parameters) keeping the rows the grid's filterModel keeps."""
    terms, params = [], []
    for column, model in (filter_model.items() if isinstance(filter_model, dict) else ()):
        if isinstance(column, str) and column in columns and isinstance(model, dict):
            sql, values = column_condition(identifier(column), model)
            terms.append(sql)
            params.extend(values)
    return (" AND ".join(terms) if terms else "TRUE"), params


def column_condition(column: str, model: dict) -> tuple[str, list]:
    """One column's filter model: one condition, or several joined by AND or OR."""
    conditions = model.get("conditions")
    if not conditions:
        return condition(column, model)
    if not isinstance(conditions, list):
        return TRUE
    parts = [condition(column, {"filterType": model.get("filterType"), **c})
             for c in conditions[:MAX_FILTER_CONDITIONS] if isinstance(c, dict)] or [TRUE]
    joiner = " OR " if model.get("operator") == "OR" else " AND "
    return "(" + joiner.join(sql for sql, _ in parts) + ")", [v for _, values in parts for v in values]


def condition(column: str, model: dict) -> tuple[str, list]:
    """One condition as SQL that is never NULL; an unknown or unfinished one keeps every row."""
    kind = model.get("type")
    if not isinstance(kind, str):
        return TRUE
    if kind in ("blank", "notBlank"):
        blank = f"({column} IS NULL OR CAST({column} AS VARCHAR) = '')"
        return (blank if kind == "blank" else f"NOT {blank}"), []
    value = model.get("filter")
    if value is None or (isinstance(value, str) and value == ""):
        return TRUE
    if model.get("filterType") == "number":
        number, upper = _filter_number(value), _filter_number(model.get("filterTo"))
        if number is None:
            return TRUE
        numbers = f"TRY_CAST({column} AS DOUBLE)"
        if kind == "inRange":  # AG Grid's default range leaves out both ends
            if upper is None:
                return f"coalesce({numbers} > ?, FALSE)", [number]
            return f"coalesce({numbers} > ? AND {numbers} < ?, FALSE)", [number, upper]
        if kind in NUMBER_SQL:
            return f"coalesce({numbers} {NUMBER_SQL[kind]} ?, FALSE)", [number]
        return TRUE
    if kind not in TEXT_SQL:
        return TRUE
    text = f"lower(coalesce(CAST({column} AS VARCHAR), ''))"
    return "coalesce(" + TEXT_SQL[kind].format(text=text) + ", FALSE)", [str(value).lower()]


def order_terms(sort_model, columns) -> list[str]:
    """ORDER BY terms of the grid's sortModel (first column first), nulls last as pandas puts them."""
    if not isinstance(sort_model, list):
        return []
    terms = []
    for sort in sort_model:
        if isinstance(sort, dict) and isinstance(sort.get("colId"), str) and sort["colId"] in columns and sort.get("sort") in ("asc", "desc"):
            terms.append(f"{identifier(sort['colId'])} {'ASC' if sort['sort'] == 'asc' else 'DESC'} NULLS LAST")
    return terms


def filtered_query(source: str, columns, order: list[str], sort_model, filter_model) -> tuple[str, list]:
    """SELECT of the grid's columns from `source` (a query of this package's, giving the columns
    and the columns `order` names), filtered and sorted as the grid asks, ties in `order`."""
    condition_sql, params = where_clause(filter_model, columns)
    selected = ", ".join(identifier(c) for c in columns)
    terms = order_terms(sort_model, columns) + order
    return f"SELECT {selected} FROM ({source}) WHERE {condition_sql} ORDER BY {', '.join(terms)}", params


def page_rows(catalog, source: str, columns, order: list[str], start: int, end: int, sort_model=None, filter_model=None, total=None):
    """(rows start..end of the filtered, sorted rows, how many rows the filter keeps).  `total()`,
    when given, is the count of all rows (memoised by the caller): used when nothing is filtered."""
    query, params = filtered_query(source, columns, order, sort_model, filter_model)
    rows = catalog.sql(f"{query} LIMIT ? OFFSET ?", [*params, max(0, end - start), start])
    condition_sql, count_params = where_clause(filter_model, columns)
    if condition_sql == "TRUE" and total is not None:
        return rows, int(total())
    return rows, count_rows(catalog, source, condition_sql, count_params)


def count_rows(catalog, source: str, condition_sql: str = "TRUE", params=()) -> int:
    return int(catalog.sql(f"SELECT count(*) AS n FROM ({source}) WHERE {condition_sql}", list(params))["n"].iloc[0])
