"""The browser playground: pick a model, fill a form fitted to its task, watch
the run live.  Mount with ``path("", include("inference.playground.urls"))``."""
