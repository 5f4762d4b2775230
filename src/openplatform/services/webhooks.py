"""Install/uninstall notifications POSTed to an app's webhook_url (SPEC §3), with retries.

The body keeps the original platform's format for existing receivers::

    {"type": 1, "customer_id": "cus_…", "action_time": 1700000000000,
     "expiration_time": 1700000300000, "signature": "<md5 hex>", "app_id": "…", "xspe": "spe_…",
     "event_id": "evt_…"}

``type`` is 1 (install) or 2 (uninstall); times are UNIX milliseconds; ``signature`` is
MD5 hex of ``app_id:app_secret:expiration_time``. ``app_id``, ``xspe`` and ``event_id``
are additions (receivers ignore unknown keys): for an installation for a whole SPE
``customer_id`` is ``""`` and ``xspe`` says which SPE; ``event_id`` is the same on every
retry of one event, so receivers can drop duplicates. Because the MD5 covers neither the
body nor the type, the ``X-OpenPlatform-Timestamp`` / ``X-OpenPlatform-Signature``
headers carry an HMAC-SHA256 over ``timestamp.body`` (core/signing.py).

``action_time`` is when the event happened and never changes; ``expiration_time`` is
the send time plus 5 minutes, recomputed on every attempt, so a receiver that rejects
expired notifications still accepts a retry. Both signatures are computed at send
time with the app's current secret; the stored payload holds neither.

A receiver must answer HTTP 2xx with a JSON object whose ``code`` is the integer 0;
anything else (other status, redirect, timeout, other body) is a failed attempt,
retried after ``BACKOFF`` and abandoned after ``MAX_ATTEMPTS``. Every attempt is
written to the audit log (``webhook.delivered`` / ``webhook.failed`` / ``webhook.abandoned``).
Every worker counts the outbox's backlog (rows neither delivered nor abandoned) at most every
``BACKLOG_SECONDS`` into ``openplatform_webhook_backlog`` (the newest count of a live worker).

``Sender`` goes only to public addresses, connects to the address it checked and
follows no redirect (SPEC §9, ``core/egress.py``); a refused destination is a
failed attempt like any other. No log line and no ``last_error`` holds a URL's
query, which may carry the receiver's credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import httpx
import orjson
from prometheus_client import Gauge

from openplatform import events, logs
from openplatform.core import egress
from openplatform.core.signing import legacy_notification_signature, sign_webhook
from openplatform.models import Installation
from openplatform.records import DELIVERY_ATTEMPTS, DELIVERY_BACKOFF, Delivery
from openplatform.security import new_id
from openplatform.services.validation import NotFound

if TYPE_CHECKING:
    from openplatform.services.admin import Admin

log = logging.getLogger("openplatform.webhooks")
logs.redact_url_queries("httpx")  # its INFO line "HTTP Request: POST <url>" would show the query

INSTALL = 1
UNINSTALL = 2
EXPIRATION_MS = 5 * 60 * 1000
# Waits after failed attempts 1, 2, …, 7; the 8th failure abandons the event (~10.7 h in all). In
# records.py, as the cleanup deletes abandoned rows (out of attempts) in time, and pending ones never.
BACKOFF = DELIVERY_BACKOFF
MAX_ATTEMPTS = DELIVERY_ATTEMPTS
TIMEOUT_SECONDS = 5.0  # for the whole exchange, connect to last byte
LEASE_SECONDS = 60.0  # a claimed row is left alone this long (well over TIMEOUT_SECONDS)
BATCH = 16  # rows claimed per pass; they are sent concurrently
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "openplatform-webhooks/1"
MAX_ADDRESSES = 4  # a name's addresses tried in turn when a connection is refused
BACKLOG_SECONDS = 15.0  # the backlog is counted (one COUNT over the outbox) at most this often

BACKLOG = Gauge(
    "openplatform_webhook_backlog",
    "Webhook notifications neither delivered nor abandoned (due or waiting to retry)",
    multiprocess_mode="livemostrecent",  # every worker counts the same table: its newest count
)


def notification(kind: int, installation: Installation, at: float) -> dict[str, object]:
    """The stored payload of an event: everything but the secret-derived parts."""
    return {
        "type": kind,
        "customer_id": installation.customer_id or "",
        "action_time": int(at * 1000),
        "app_id": installation.app_id,
        "xspe": installation.xspe,
        "event_id": new_id("evt_"),
    }


def notification_body(payload: dict[str, object], app_id: str, secret: str, now: float) -> bytes:
    """The JSON sent: the original keys first, then the additions."""
    expiration = int(now * 1000) + EXPIRATION_MS
    original = {
        "type": payload["type"],
        "customer_id": payload["customer_id"],
        "action_time": payload["action_time"],
        "expiration_time": expiration,
        "signature": legacy_notification_signature(app_id, secret, expiration),
    }
    return orjson.dumps({**original, **{k: v for k, v in payload.items() if k not in original}})


def judge(status: int, answer: bytes | None) -> str | None:
    """None when the receiver acknowledged, else why not (kept in last_error and the audit log)."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if answer is None:
        return f"HTTP {status} with an answer over {MAX_ANSWER_BYTES} bytes"
    try:
        document = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return f"HTTP {status} with an answer that is not JSON"
    code = document.get("code") if isinstance(document, dict) else None
    if type(code) is not int or code != 0:
        return f'HTTP {status} with "code" {str(code)[:40]!r}, not 0'
    return None


async def read_bounded(response: httpx.Response) -> bytes | None:
    """The answer body, or None when it is larger than anyone acknowledging needs."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Sender:
    """POSTs a notification and judges the answer, going only where SPEC §9 allows.

    The host is resolved once and checked (``egress.resolve``); the request then
    goes to that address, with the URL's own Host header and, over https, the
    certificate checked for the host name (httpx's ``sni_hostname`` extension).
    Connections are not kept alive, so one opened for one host name is never
    reused for another that shares its address.
    """

    def __init__(self, private_networks: bool = False) -> None:
        self.private_networks = private_networks
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,  # a redirect could bounce the POST anywhere, unchecked
            trust_env=False,  # no proxy from the environment: it would resolve the name itself
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver acknowledged, else why not (never with the URL's query)."""
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):  # resolving included
                error = await self._post(url, body, headers)
        except (TimeoutError, httpx.TimeoutException):
            return f"no answer within {TIMEOUT_SECONDS:g} s"
        except egress.Refused as exc:
            return f"refused: {exc} (webhooks only go to public addresses)"
        except httpx.InvalidURL:
            return "the webhook_url is not a valid URL"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:160]}"
        except OSError as exc:  # the name did not resolve
            error = f"cannot resolve the host: {exc.strerror or exc}"
        return None if error is None else _without_query(error, url)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        target = httpx.URL(url)
        if target.scheme not in ("http", "https"):
            return "the webhook_url is not an http or https URL"
        host = target.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
        port = target.port or (443 if target.scheme == "https" else 80)
        addresses = await egress.resolve(host, port, allow_private=self.private_networks)
        named = egress.literal_address(host) is None  # a name: the certificate must be for it
        extensions = {"sni_hostname": host} if named and target.scheme == "https" else {}
        pinned_headers = {**headers, "Host": target.netloc.decode("ascii")}
        failure: httpx.ConnectError | None = None
        for address in addresses[:MAX_ADDRESSES]:
            request = self._client.build_request(
                "POST", target.copy_with(host=str(address)), content=body, headers=pinned_headers,
                extensions=extensions,
            )  # fmt: skip
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = exc
                continue
            try:
                answer = await read_bounded(response)
            finally:
                await response.aclose()
            return judge(response.status_code, answer)
        assert failure is not None
        raise failure


def _without_query(error: str, url: str) -> str:
    """An error text with the URL's query (and any URL's query) taken out."""
    query = httpx.URL(url).query.decode("ascii", "replace") if "?" in url else ""
    if query:
        error = error.replace(query, "…")
    return logs.without_url_queries(error)


class WebhookWorker:
    """Polls the outbox and delivers due notifications; one per server process."""

    def __init__(self, admin: Admin, poll_seconds: float) -> None:
        self.admin = admin
        self.outbox = admin.stores.outbox
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._sender: Sender | None = None
        self._stopping = asyncio.Event()
        self._backlog_counted_at: float | None = None  # time.monotonic()

    def clock(self) -> float:
        return self.admin.db.clock()

    def start(self) -> None:
        self._sender = Sender(self.admin.webhook_private_networks)
        self._task = asyncio.create_task(self._run(), name="webhook-worker")

    async def stop(self) -> None:
        """Stop polling, letting sends in flight finish (at most TIMEOUT_SECONDS).

        Finishing them spares receivers a duplicate on every deploy; a send cut
        short anyway is retried (by any process) once its lease ends.
        """
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, TIMEOUT_SECONDS + 1)
            except TimeoutError:
                pass  # wait_for has cancelled it
        if self._sender is not None:
            await self._sender.aclose()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while await self.run_once() == BATCH and not self._stopping.is_set():
                    pass  # a backlog: keep going without sleeping
            except Exception:
                log.exception("webhook worker pass failed")
            await self.count_backlog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

    async def count_backlog(self, now: float | None = None) -> None:
        """Set ``openplatform_webhook_backlog`` unless it was counted less than BACKLOG_SECONDS ago."""
        now = time.monotonic() if now is None else now
        if self._backlog_counted_at is not None and now - self._backlog_counted_at < BACKLOG_SECONDS:
            return
        self._backlog_counted_at = now
        try:
            BACKLOG.set(await self.outbox.pending(MAX_ATTEMPTS))
        except Exception as exc:  # the database went away: the next pass tries again
            log.warning("webhook backlog not counted: %s", type(exc).__name__)

    async def run_once(self) -> int:
        """Claim up to BATCH due rows and deliver them concurrently; returns how many."""
        claimed: list[Delivery] = []
        while len(claimed) < BATCH:
            delivery = await self.outbox.claim(self.clock(), LEASE_SECONDS, MAX_ATTEMPTS)
            if delivery is None:
                break
            claimed.append(delivery)
        results = await asyncio.gather(*(self.deliver(d) for d in claimed), return_exceptions=True)
        for delivery, result in zip(claimed, results, strict=True):
            if isinstance(result, Exception):  # e.g. the database went away: retried after the lease
                log.error("webhook %s: outcome not recorded: %s", delivery.id, type(result).__name__)
        return len(claimed)

    async def deliver(self, delivery: Delivery) -> None:
        try:
            error = await self._send(delivery)
        except Exception as exc:  # one bad row must not stop the others
            log.exception("webhook %s could not be sent", delivery.id)
            error = f"internal error: {type(exc).__name__}"
        now = self.clock()
        if error is None:
            await self.outbox.delivered(delivery.id, now)
            await self._audit(events.WEBHOOK_DELIVERED, delivery)
        elif delivery.attempts >= MAX_ATTEMPTS:
            await self.outbox.failed(delivery.id, error, now)
            await self._audit(events.WEBHOOK_ABANDONED, delivery, error=error)
        else:
            wait = BACKOFF[delivery.attempts - 1]
            await self.outbox.failed(delivery.id, error, now + wait)
            await self._audit(events.WEBHOOK_FAILED, delivery, error=error, retry_in=wait)

    async def _send(self, delivery: Delivery) -> str | None:
        app = await self.admin.db.get_app(delivery.app_id)
        if app is None:
            return "the app no longer exists"
        if not app.webhook_url:
            return "the app has no webhook_url"
        try:
            secret = await self.admin.app_secret(delivery.app_id)
        except NotFound:
            return "the app has no current secret"
        now = self.clock()
        body = notification_body(delivery.payload, delivery.app_id, secret, now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-OpenPlatform-Event": delivery.event,
            "X-OpenPlatform-Event-Id": str(delivery.payload.get("event_id", "")),
            **sign_webhook(secret, body, int(now)),
        }
        assert self._sender is not None, "start() the worker first"
        return await self._sender.post(app.webhook_url, body, headers)

    async def _audit(self, event: str, delivery: Delivery, **detail: object) -> None:
        payload = delivery.payload
        await self.admin.db.audit(
            event, app_id=delivery.app_id, xspe=payload.get("xspe"),
            customer_id=payload.get("customer_id") or None, delivery_id=delivery.id,
            type=payload.get("type"), event_id=payload.get("event_id"), attempt=delivery.attempts, **detail,
        )  # fmt: skip
        level = logging.INFO if event == events.WEBHOOK_DELIVERED else logging.WARNING
        log.log(level, "%s app=%s delivery=%s attempt=%s %s", event, delivery.app_id, delivery.id,
                delivery.attempts, detail.get("error", ""))  # fmt: skip
