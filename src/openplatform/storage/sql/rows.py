"""Row ↔ model conversions shared by the hot path and the management path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from openplatform.models import App, AppSecret, AuthorizationCode, Customer, Installation, TokenRecord

Row = Any


def app_from_row(row: Row, secret_rows: Iterable[Row]) -> App:
    return App(
        app_id=row["app_id"],
        name=row["name"],
        host_url=row["host_url"],
        status=row["status"],
        scopes=tuple((row["scopes"] or "").split()),
        ip_whitelist=tuple((row["ip_whitelist"] or "").split()),
        webhook_url=row["webhook_url"],
        secrets=tuple(AppSecret(s["secret_hash"], s["expires_at"]) for s in secret_rows),
        owner_id=row["owner_id"],
        created_at=row["created_at"],
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
        installation_id=row["installation_id"],
        app_id=row["app_id"],
        xspe=row["xspe"],
        customer_id=row["customer_id"],
        installed_at=row["installed_at"],
        uninstalled_at=row["uninstalled_at"],
    )


def code_from_row(row: Row) -> AuthorizationCode:
    return AuthorizationCode(
        digest=row["digest"],
        app_id=row["app_id"],
        installation_id=row["installation_id"],
        customer_id=row["customer_id"],
        xspe=row["xspe"],
        redirect_uri=row["redirect_uri"],
        scope=row["scope"],
        expires_at=row["expires_at"],
        code_challenge=row["code_challenge"],
        used_at=row["used_at"],
    )


def token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(
        digest=row["digest"],
        kind=row["kind"],
        app_id=row["app_id"],
        scope=row["scope"],
        expires_at=row["expires_at"],
        installation_id=row["installation_id"],
        customer_id=row["customer_id"],
        xspe=row["xspe"],
        family_id=row["family_id"],
        revoked_at=row["revoked_at"],
        rotated_at=row["rotated_at"],
        successor=row["successor"],
        created_at=row["created_at"],
        family_expires_at=row["family_expires_at"],
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
    detail = {k: v for k, v in fields.items() if k not in AUDIT_COLUMNS}
    return (
        event, fields.get("app_id"), fields.get("xspe"), fields.get("customer_id"), fields.get("ip"),
        orjson.dumps(detail, default=str).decode(),
    )  # fmt: skip
