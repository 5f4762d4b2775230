"""Showing a new app secret exactly once (SPEC §4: "secret once, with copy").

Creating an app or rotating its secret redirects to the app's secret page with
a short-lived ticket cookie bound to the session and the app. That page
decrypts the current secret (kept AES-GCM encrypted for the install
notifications, SPEC §3) only if the ticket is valid, the secret is fresh, and
it has never been shown: showing it writes an ``app.secret_shown`` audit event,
and a secret with such an event is never shown again. So a reload, the back
button or another tab gets "already shown"; a lost secret is replaced by
rotating it.
"""

from __future__ import annotations

from openplatform import events
from openplatform.models import App
from openplatform.security import constant_time_equals
from openplatform.web.ui.pages import Ctx

REVEAL_COOKIE = "op_reveal"
REVEAL_SECONDS = 600


def _mac(ctx: Ctx, app_id: str, expires: int) -> str:
    assert ctx.session is not None
    keyring = ctx.console.admin.keyring
    return keyring.digest(f"secret-reveal\x00{ctx.session.digest}\x00{app_id}\x00{expires}")


def grant(ctx: Ctx, app_id: str) -> None:
    """Let this session see the app's current secret once, within REVEAL_SECONDS."""
    expires = int(ctx.accounts.now()) + REVEAL_SECONDS
    value = f"{expires}.{_mac(ctx, app_id, expires)}"
    ctx.set_cookie(REVEAL_COOKIE, value, max_age=REVEAL_SECONDS, samesite="strict", path=_path(app_id))


def _path(app_id: str) -> str:
    return f"/console/apps/{app_id}/secret"


def _ticket_ok(ctx: Ctx, app_id: str) -> bool:
    expires, _, mac = ctx.request.cookies.get(REVEAL_COOKIE, "").partition(".")
    if not expires.isdigit() or int(expires) < ctx.accounts.now():
        return False
    return constant_time_equals(mac, _mac(ctx, app_id, int(expires)))


async def reveal(ctx: Ctx, app: App) -> str | None:
    """The secret in clear if this is its one showing, else None. Spends the ticket."""
    ctx.set_cookie(REVEAL_COOKIE, "", max_age=0, samesite="strict", path=_path(app.app_id))
    if not _ticket_ok(ctx, app.app_id):
        return None
    queries, admin = ctx.console.queries, ctx.console.admin
    created = await queries.current_secret_created_at(app.app_id)
    if created is None or ctx.accounts.now() - created > REVEAL_SECONDS:
        return None
    await admin.db.audit(events.APP_SECRET_SHOWN, app_id=app.app_id, user_id=ctx.user.user_id)
    # Recorded first, counted second: of two racing showings, neither wins (fail closed).
    if await queries.count_events_since(app.app_id, events.APP_SECRET_SHOWN, created) != 1:
        return None
    return await admin.app_secret(app.app_id)
