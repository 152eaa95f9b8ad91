"""The HTTP API (FastAPI): routers per resource, errors in one shape, bearer-key auth."""
