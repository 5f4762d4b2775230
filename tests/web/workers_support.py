"""An app factory for tests/web/test_serve_workers.py: a worker whose app cannot be built."""


def broken_app() -> object:
    raise RuntimeError("this app cannot be built")
