"""How pages reach the TableStore of the app serving them: through the Flask app's
config (set by create_app), never through a module-level variable."""

from __future__ import annotations

import flask

STORE_KEY = "INSPECTOR_TABLE_STORE"


def current_store():
    return flask.current_app.config[STORE_KEY]


def current_views():
    """The store's TableViews of its current tables (dashboard.views)."""
    return current_store().views()
