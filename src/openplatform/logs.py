"""Structured logs: one JSON object per line on stderr.

Nothing in openplatform logs a token, code or secret; request URLs are never
logged (the documented API carries codes and tokens in query strings), which
is also why uvicorn's access log is off. URLs the server fetches (webhooks) are
logged at most as ``scheme://host/path``: the query of every URL in a record of
the ``httpx`` logger is cut out (``redact_url_queries``), as a webhook_url's
query may carry the receiver's credential (SPEC §9).
"""

from __future__ import annotations

import logging
import re
import time

import orjson

# A URL's query and fragment: from "?" or "#" to the next whitespace (a URL has none, encoded).
_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s?#]*)[?#]\S*")


def without_url_queries(text: str) -> str:
    """``text`` with the query and fragment of every URL in it removed."""
    return _URL_QUERY.sub(r"\1", text)


class RedactUrlQueries(logging.Filter):
    """Rewrites a record whose message holds a URL with a query: the URL stays, its query goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = without_url_queries(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactUrlQueries()


def redact_url_queries(logger_name: str) -> None:
    """Install the redaction on a logger (once); its records reach no handler unredacted."""
    logger = logging.getLogger(logger_name)
    if _REDACT not in logger.filters:
        logger.addFilter(_REDACT)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str = "info") -> dict[str, object]:
    """Configure the root logger and return a uvicorn ``log_config`` using the same format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    redact_url_queries("httpx")  # the HTTP client's own INFO line names each URL it fetches
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"level": level.upper(), "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
        },
    }
