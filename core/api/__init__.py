"""The REST API (issue 19): FastAPI app, token auth, metrics. ``create_app`` is in :mod:`core.api.app`."""
