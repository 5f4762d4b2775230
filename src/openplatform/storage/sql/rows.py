"""Row ↔ model conversions shared by the hot path and the management path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from openplatform.models import App, AppSecret, Customer, Installation, TokenRecord

Row = Any


# The hot path's records are built positionally, in their fields' order: called with keywords, a
# class takes them through a dict (type.__call__ to __init__), which cost a TokenRecord's read about
# 6,000 instructions more than these positions (callgrind; docs/benchmarks.md, "Records and limits
# (issue 14)"). tests/core/test_records.py checks every field lands in its own place.


def app_from_row(row: Row, secret_rows: Iterable[Row]) -> App:
    return App(
        row["app_id"],
        row["name"],
        row["host_url"],
        row["status"],
        tuple((row["scopes"] or "").split()),  # scopes
        tuple((row["ip_whitelist"] or "").split()),  # ip_whitelist
        row["webhook_url"],
        tuple([AppSecret(s["secret_hash"], s["expires_at"]) for s in secret_rows]),  # secrets
        row["owner_id"],
        row["created_at"],
    )


def customer_from_row(row: Row) -> Customer:
    return Customer(
        customer_id=row["customer_id"],
        xspe=row["xspe"],
        name=row["name"],
        contact=row["contact"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def installation_from_row(row: Row) -> Installation:
    return Installation(
        row["installation_id"],
        row["app_id"],
        row["xspe"],
        row["customer_id"],
        row["installed_at"],
        row["uninstalled_at"],
    )


def token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(
        row["digest"],
        row["kind"],
        row["app_id"],
        row["scope"],
        row["expires_at"],
        row["installation_id"],
        row["customer_id"],
        row["xspe"],
        row["family_id"],
        row["revoked_at"],
        row["rotated_at"],
        row["successor"],
        row["created_at"],
        row["family_expires_at"],
    )


TOKEN_COLUMNS = (
    "digest, kind, app_id, installation_id, customer_id, xspe, scope, family_id, "
    "created_at, expires_at, revoked_at, rotated_at, successor, family_expires_at"
)


def token_params(t: TokenRecord) -> tuple[object, ...]:
    return (
        t.digest, t.kind, t.app_id, t.installation_id, t.customer_id, t.xspe, t.scope,
        t.family_id, t.created_at, t.expires_at, t.revoked_at, t.rotated_at, t.successor, t.family_expires_at,
    )  # fmt: skip


AUDIT_COLUMNS = ("event", "app_id", "xspe", "customer_id", "ip", "detail")


def audit_values(event: str, fields: dict[str, object]) -> tuple[object, ...]:
    """An audit event's columns, in AUDIT_COLUMNS order: the fields without a column go to detail (JSON)."""
    # The columns popped from a copy, not the rest picked by a comprehension (callgrind).
    detail = fields.copy()
    pop = detail.pop
    app_id, xspe, customer_id, ip = pop("app_id", None), pop("xspe", None), pop("customer_id", None), pop("ip", None)
    return event, app_id, xspe, customer_id, ip, audit_detail(detail)


def audit_detail(detail: dict[str, object]) -> str:
    """The ``detail`` column: an event's fields without a column of their own (``detail``, the caller's
    own dict, without ``app_id``, ``xspe``, ``customer_id`` and ``ip``) as JSON; a field named ``event``
    or ``detail`` is dropped (columns of their own too)."""
    if not detail:
        return "{}"
    if "event" in detail or "detail" in detail:
        detail.pop("event", None)
        detail.pop("detail", None)
    return orjson.dumps(detail, default=str).decode()
