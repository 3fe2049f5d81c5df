"""Small component builders shared by the pages (plain text only: payloads are hostile)."""

from __future__ import annotations

import pandas as pd
from dash import Input, Output, dash_table, dcc, html

from dashboard import exports

PAGE_SIZE = 20


def number(value, digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:,.{digits}f}"


def small_table(frame: pd.DataFrame, formats: dict[str, str] | None = None, id: str | None = None) -> dash_table.DataTable:
    """A small, already aggregated table shipped whole (a few rows)."""
    formats = formats or {}
    data = []
    for row in frame.to_dict("records"):
        data.append({k: (format(v, formats[k]) if k in formats and v is not None and not pd.isna(v) else ("" if not isinstance(v, (list, dict)) and pd.isna(v) else str(v) if isinstance(v, (list, dict)) else v))
                     for k, v in row.items()})
    kwargs = {"id": id} if id else {}
    return dash_table.DataTable(data=data, columns=[{"name": c, "id": c} for c in frame.columns], style_table={"overflowX": "auto"},
                                style_cell={"fontFamily": "monospace", "fontSize": 12, "textAlign": "right"}, **kwargs)


def paged_table(id: str, columns: list[str], filter_query: str = "") -> dash_table.DataTable:
    """A DataTable paged, sorted and filtered on the server (page_action="custom")."""
    return dash_table.DataTable(
        id=id, columns=[{"name": c, "id": c} for c in columns], data=[], page_current=0, page_size=PAGE_SIZE,
        page_action="custom", sort_action="custom", sort_mode="multi", sort_by=[], filter_action="custom",
        filter_query=filter_query, row_selectable=False, cell_selectable=True,
        style_table={"overflowX": "auto"}, style_cell={"fontFamily": "monospace", "fontSize": 12},
    )


def register_paging(app, store, table_id: str, page) -> None:
    """Serve a paged_table from the server: page(views, page_current, page_size, sort_by, filter_query)."""

    @app.callback(Output(table_id, "data"), Output(table_id, "page_count"),
                  Input(table_id, "page_current"), Input(table_id, "page_size"),
                  Input(table_id, "sort_by"), Input(table_id, "filter_query"))
    def _page(page_current, page_size, sort_by, filter_query):
        return page(store.views(), page_current, page_size, sort_by, filter_query)


def csv_download(button_id: str, download_id: str) -> html.Div:
    """A "Download CSV" button and its dcc.Download; the page's callback fills it on click only."""
    return html.Div([html.Button("Download CSV", id=button_id, n_clicks=0), dcc.Download(id=download_id)],
                    style={"margin": "0.5em 0"})


def send_csv(page: str, tables, state: dict | None = None) -> dict:
    """The dcc.Download data of `page`'s CSV export (see dashboard.exports)."""
    filename, text = exports.export_csv(page, tables, state)
    return dcc.send_string(text, filename, type="text/csv")


def graph(id: str, figure=None) -> dcc.Graph:
    return dcc.Graph(id=id, figure=figure if figure is not None else {}, config={"displaylogo": False})

