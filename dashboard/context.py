"""How pages reach the TableStore of the app serving them: through the Flask app's
config (set by create_app), never through a module-level variable."""

from __future__ import annotations

import dash
import flask
from dash.exceptions import MissingCallbackContextException

STORE_KEY = "INSPECTOR_TABLE_STORE"


def current_store():
    return flask.current_app.config[STORE_KEY]


def current_views():
    """The store's TableViews of its current tables (dashboard.views), for a page's layout.

    A page is laid out for the browser by Dash's router callback.  Outside a callback, Dash is
    building its validation layout: every page's layout, once, at the server's first request,
    for the ids of their components (it ships it in every index page).  That one is laid out
    from empty views: the first request computes no page's views nor waits for any (the views
    of a capture taken from the cache are computed in the background meanwhile), and the index
    page carries no figures."""
    store = current_store()
    if not _in_callback():
        return store.empty_views()

    @flask.after_this_request
    def _shown(response):
        store.page_shown()  # the other pages' views may be computed now (TableStore)
        return response

    return store.views()


def _in_callback() -> bool:
    try:
        return bool(dash.callback_context.outputs_list)
    except (MissingCallbackContextException, LookupError):  # LookupError: a server thread before its first callback
        return False
