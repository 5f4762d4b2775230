"""What the fuzz tests share: one request through the raw ASGI entry, and the checks on its answer.

The app is called exactly as a server calls it (scope, receive, send), so header
bytes, split bodies and paths reach it the way uvicorn would hand them over; an
exception escaping the app fails the test (under a server it is a 500).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from hypothesis import HealthCheck, seed, settings

Headers = list[tuple[bytes, bytes]]

# CI (.ci/run sets CI=true) replays one fixed seed; a developer's run draws a new one each time
# (and Hypothesis keeps any failing example in .hypothesis/ to replay it first next time).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIXED_SEED = 20_240_909
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
)  # fmt: skip


def examples(default: int) -> int:
    """Examples per test: the bounded default, or ``OPENPLATFORM_FUZZ_EXAMPLES`` for a longer hunt."""
    return int(os.environ.get("OPENPLATFORM_FUZZ_EXAMPLES") or default)


def ci_seed(test: Any) -> Any:
    """``@seed(FIXED_SEED)`` in CI, nothing locally."""
    return seed(FIXED_SEED)(test) if IN_CI else test


@dataclass
class Answer:
    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def media(self) -> str:
        return (self.header(b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()


async def asgi_call(
    app: Any,
    method: str,
    raw_path: bytes,
    query: bytes = b"",
    headers: Headers | None = None,
    body: list[bytes] | bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 40000),
    root_path: str = "",
    complete: bool = True,
) -> Answer:
    """One request through ``app`` as a server would make it: ``body`` as one message or several;
    with ``complete=False`` the client goes away before its last part (``http.disconnect``)."""
    parts = [body] if isinstance(body, bytes) else list(body) or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    if not complete:
        messages = messages[:-1] or [{"type": "http.request", "body": b"", "more_body": True}]
    incoming = iter(messages)
    answer = Answer()
    started = finished = False

    async def receive() -> dict[str, Any]:
        return next(incoming, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        nonlocal started, finished
        if message["type"] == "http.response.start":
            assert not started, "two response starts"
            started = True
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            assert started and not finished, "a body outside a response"
            answer.body += message.get("body", b"")
            finished = not message.get("more_body", False)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http", "method": method,
        # What uvicorn does with the request target: the path percent-decoded (lossily), the raw one kept.
        "path": root_path + unquote(raw_path.decode("latin-1")), "raw_path": raw_path, "query_string": query,
        "root_path": root_path, "headers": list(headers or []), "client": client, "server": ("testserver", 80),
    }  # fmt: skip
    await app(scope, receive, send)  # an exception here is what a server answers with a 500
    assert started and finished, f"{method} {raw_path!r}: the app did not finish its answer"
    return answer


def assert_envelope(answer: Answer, what: str = "") -> dict[str, Any]:
    """A 4xx of the API is ``{"code": <status, then two digits>, "msg": str, "error": str, "result": null}``
    (validation errors may add the ``field`` they are about)."""
    assert answer.media == "application/json", f"{what}: {answer.status} as {answer.media!r}: {answer.body[:200]!r}"
    data = orjson.loads(answer.body)
    assert isinstance(data, dict), f"{what}: {data!r}"
    assert set(data) - {"field"} == {"code", "msg", "error", "result"}, f"{what}: {data!r}"
    code = data["code"]
    assert type(code) is int and str(code)[:3] == str(answer.status) and len(str(code)) == 5, f"{what}: {data!r}"
    assert isinstance(data["msg"], str) and data["msg"], f"{what}: {data!r}"
    assert isinstance(data["error"], str) and data["error"], f"{what}: {data!r}"
    assert data["result"] is None, f"{what}: {data!r}"
    assert isinstance(data.get("field", ""), str), f"{what}: {data!r}"
    return data


def assert_no_server_error(answer: Answer, what: str = "") -> None:
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
