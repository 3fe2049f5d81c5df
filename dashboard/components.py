"""Small component builders shared by the pages (plain text only: payloads are hostile).

Big tables are dash-ag-grid AgGrids, paged on the server.  AG Grid puts a cell's value in the
page as text; no column here has an HTML or Markdown cell renderer, and none may get one.
Small aggregated tables (a few rows) are plain HTML tables: a grid per small table costs a
page like REST vs WebSocket a third of a second of rendering for nothing.
"""

from __future__ import annotations

import pandas as pd
from dash import Input, Output, dcc, html
from dash_ag_grid import AgGrid

from dashboard import aggregate, exports

PAGE_SIZE = 20
# A grid asks for PAGE_SIZE rows at a time; a crafted getRowsRequest (endRow 10**9) gets no more
# than this many, so one request can never make the server serialise a whole million-row table.
MAX_ROWS_PER_REQUEST = 500
CELL_STYLE = {"fontFamily": "monospace", "fontSize": 12}
# cellDataType off: every value is shown as its text (no checkbox for a boolean, no inferred format);
# no column virtualisation: every column of a row is in the page, not only those scrolled to
GRID_COLUMNS = {"cellDataType": False, "cellStyle": CELL_STYLE, "minWidth": 90, "flex": 1}
GRID_OPTIONS = {"domLayout": "autoHeight", "suppressColumnVirtualisation": True, "suppressFieldDotNotation": True}


def small_table(frame: pd.DataFrame, formats: dict[str, str] | None = None, id: str | None = None) -> html.Table:
    """A small, already aggregated table shipped whole (a few rows), its values formatted as text.
    Every cell names its column (data-col), as a grid's cells do (col-id)."""
    formats = formats or {}
    header = html.Tr([html.Th(c, **{"data-col": c}) for c in frame.columns])
    body = [html.Tr([html.Td(_shown(v, formats.get(k)), **{"data-col": k}) for k, v in row.items()]) for row in frame.to_dict("records")]
    kwargs = {"id": id} if id else {}
    return html.Table([html.Thead(header), html.Tbody(body)], className="small-table", **kwargs)  # styled in assets/tables.css


def _shown(value, spec: str | None) -> str:
    """A cell of small_table as text: formatted when it has a format, "" when missing."""
    if isinstance(value, (list, dict)):
        return str(value)
    if value is None or pd.isna(value):
        return ""
    return format(value, spec) if spec else str(value)


def paged_table(id: str, columns: list[str], text_columns=(), filter_model: dict | None = None, hidden=(),
                tooltips: dict[str, str] | None = None) -> AgGrid:
    """A grid paged, sorted and filtered on the server: AG Grid's infinite row model asks for each
    page (getRowsRequest) and register_paging answers (getRowsResponse).  Rows carry an `id`
    (getRowId), so a clicked cell names its row.  `filter_model` is the filter it opens with;
    `hidden` columns are in the rows but not shown; `tooltips`: column -> the row field shown on
    hovering its cells."""
    tooltips = tooltips or {}
    return AgGrid(
        id=id, columnDefs=[{**_paged_column(c, c in text_columns), **({"hide": True} if c in hidden else {}),
                            **({"tooltipField": tooltips[c]} if c in tooltips else {})} for c in columns],
        defaultColDef={**GRID_COLUMNS, "flex": None, "sortable": True, "floatingFilter": True},
        rowModelType="infinite", getRowId="params.data.id", filterModel=filter_model or {},
        # one request per page: the grid's block is the page; columns as wide as the first rows need
        dashGridOptions={**GRID_OPTIONS, "tooltipShowDelay": 300, "pagination": True, "paginationPageSize": PAGE_SIZE, "paginationPageSizeSelector": False,
                         "cacheBlockSize": PAGE_SIZE, "autoSizeStrategy": {"type": "fitCellContents"}},
        style={"height": None},
    )


def _paged_column(column: str, text: bool) -> dict:
    return {"field": column, "headerName": column, "filter": "agTextColumnFilter" if text else "agNumberColumnFilter"}


def register_paging(app, store, table_id: str, page) -> None:
    """Serve a paged_table from the server: page(views, request) -> its getRowsResponse."""

    @app.callback(Output(table_id, "getRowsResponse"), Input(table_id, "getRowsRequest"), prevent_initial_call=True)
    def _rows(request):
        return page(store.views(), request or {})


def requested_rows(request: dict) -> tuple[int, int]:
    """(startRow, endRow) of a getRowsRequest, as row numbers the server will serve: the request
    is the browser's and may be crafted, so a missing or non-integer bound gets the grid's own
    default and the range is cut to MAX_ROWS_PER_REQUEST rows."""
    start = _row_number(request.get("startRow"), 0)
    end = _row_number(request.get("endRow"), start + PAGE_SIZE)
    return start, max(start, min(end, start + MAX_ROWS_PER_REQUEST))


def _row_number(value, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):  # AG Grid sends integers
        return default
    return max(0, value)


def rows_response(rows: pd.DataFrame, row_count: int) -> dict:
    """A getRowsResponse: the rows as JSON-safe records, and how many rows there are in all."""
    return {"rowData": aggregate.records(rows), "rowCount": int(row_count)}


def grid_state(request: dict | None) -> dict:
    """The sortModel and filterModel of the grid's last getRowsRequest: what it shows, for exports."""
    request = request or {}
    return {"sortModel": request.get("sortModel") or [], "filterModel": request.get("filterModel") or {}}


def equals_filter(column: str, value: int) -> dict:
    """A filterModel keeping the rows whose number `column` equals `value` (a ?conn=N link)."""
    return {column: {"filterType": "number", "type": "equals", "filter": value}}


def clicked_row(cell: dict | None) -> str | None:
    """The row id (getRowId) of a grid's cellClicked, or None before any click."""
    if not cell or cell.get("rowId") is None:
        return None
    return str(cell["rowId"])


def csv_download(button_id: str, download_id: str, label: str = "Download CSV") -> html.Div:
    """A "Download CSV" button (`label`) and its dcc.Download; the page's callback fills it on click only."""
    return html.Div([html.Button(label, id=button_id, n_clicks=0), dcc.Download(id=download_id)],
                    style={"margin": "0.5em 0"})


def send_csv(page: str, tables, state: dict | None = None) -> dict:
    """The dcc.Download data of `page`'s CSV export (see dashboard.exports)."""
    filename, text = exports.export_csv(page, tables, state)
    return dcc.send_string(text, filename, type="text/csv")


def send_frame(filename: str, frame: pd.DataFrame) -> dict:
    """The dcc.Download data of `frame` as CSV (text cells defused as in dashboard.exports)."""
    return dcc.send_string(exports.to_csv(frame), filename, type="text/csv")


def graph(id: str, figure=None) -> dcc.Graph:
    return dcc.Graph(id=id, figure=figure if figure is not None else {}, config={"displaylogo": False})


def claims_table(claims: list[dict], id: str) -> html.Div:
    """The claims (aggregate.claims) as a table: the claim, its verdict as a coloured badge, the
    numbers behind it per capture (each with its own badge), and how it is measured, folded."""
    header = html.Tr([html.Th(name) for name in ("claim", "verdict", "measured, per capture", "how measured")])
    rows = [html.Tr([
        html.Td(claim["claim"], className="claim"),
        html.Td(verdict_badge(claim["verdict"]), className="verdict"),
        html.Td(html.Ul([html.Li([html.Span(f"{row['capture']}: ", className="claim-capture"), html.Span(row["measured"]), " ",
                                  verdict_badge(row["verdict"])]) for row in claim["captures"]]) if claim["captures"] else "",
                className="measured"),
        html.Td(html.Details([html.Summary("how measured"), html.Span(claim["how"])]), className="how"),
    ], **{"data-claim": claim["claim"]}) for claim in claims]
    threshold = (f"A difference of less than {aggregate.MATERIAL_DIFFERENCE:.0%} of the larger number is no material "
                 "difference; a claim holds when it holds in every capture that shows one.")
    return html.Div([html.Table([html.Thead(header), html.Tbody(rows)], className="claims-table"),
                     html.P(threshold, className="claims-threshold")], id=id)


def verdict_badge(verdict: str) -> html.Span:
    """A verdict (aggregate.VERDICTS) as a badge, coloured by assets/tables.css."""
    return html.Span(verdict, className=f"badge verdict-{verdict.replace(' ', '-')}")
