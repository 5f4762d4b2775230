"""Log lines on stderr: readable text on a terminal, one JSON object per line otherwise.

``OPENPLATFORM_LOG_FORMAT`` (``config.Settings.log_format``) picks ``text`` or
``json``; unset, it is ``text`` when stderr is a terminal (``openplatform demo``
in a shell) and ``json`` when it is a file or a pipe (a service manager, a
container). ``OPENPLATFORM_ACCESS_LOG`` adds one line per HTTP request
(``web.access_log``: method, path, status, milliseconds).

Nothing in openplatform logs a token, code or secret. A request is logged by its
path only: never its query string (the documented API carries codes and tokens
there, ``?access_token=``), body or headers — which is also why uvicorn's own
access log, which prints the query, stays off. URLs the server fetches
(webhooks) are logged at most as ``scheme://host/path``: the query of every URL
in a record of the ``httpx`` logger is cut out (``redact_url_queries``), as a
webhook_url's query may carry the receiver's credential (SPEC §9).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Literal

import orjson

LogFormat = Literal["text", "json"]

# The logger of the per-request lines (web.access_log); its records carry
# (method, path, status, milliseconds) as their args.
ACCESS_LOGGER = "openplatform.access"

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


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``msg``, ``exc`` when
    there is a traceback; an access line adds ``method``, ``path``, ``status`` and ``ms``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 4:
            entry["method"], entry["path"], entry["status"], entry["ms"] = record.args
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """One readable line per record, for a person at a terminal::

        2026-11-30T01:45:12.123Z INFO  openplatform.access: POST /oauth/credit/token 200 1.9 ms

    A traceback follows on its own lines. Control characters in the message are
    escaped, so no message can forge a line of its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.isprintable():
            message = message.encode("unicode_escape").decode("ascii")
        name = "uvicorn" if record.name == "uvicorn.error" else record.name  # its INFO lines are no errors
        line = f"{_timestamp(record)} {record.levelname:<5} {name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


def default_format() -> LogFormat:
    """``text`` when stderr is a terminal (a person reads it), else ``json`` (a collector does)."""
    try:
        return "text" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return "json"


def configure(level: str = "info", log_format: LogFormat | None = None) -> dict[str, object]:
    """Configure the root logger and return a uvicorn ``log_config`` using the same format.

    ``log_format`` None means ``default_format()``. ``level`` is a ``logging`` level name
    (``OPENPLATFORM_LOG_LEVEL``), any case.
    """
    chosen = log_format or default_format()
    formatter = FORMATTERS[chosen]
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    redact_url_queries("httpx")  # the HTTP client's own INFO line names each URL it fetches
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {chosen: {"()": formatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": chosen}},
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"level": level.upper(), "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
        },
    }
