"""The read-only web dashboard (`stratus ui`): runs, sites, cost, serving and models in one place.

Layers: :mod:`stratus.ui.queries` reads (state database, ledger, serving records, registry) into plain
values; :mod:`stratus.ui.views` turns them into shapes and texts; :mod:`stratus.ui.app` is the Starlette
app that renders them with Jinja2 templates (``templates/``) and a small script (``static/app.js``).
"""

from stratus.ui.app import Dashboard, create_app

__all__ = ["Dashboard", "create_app"]
