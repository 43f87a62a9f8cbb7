"""The NoETL REST API server (FastAPI), imported only by `noetl server start` and tests."""
