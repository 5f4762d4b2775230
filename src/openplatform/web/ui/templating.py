"""Jinja2 environment of the management pages, their filters, notices and security headers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import Response

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
NOTICES = {
    "app-updated": "The app was saved.",
    "app-suspended": "The app was suspended: its tokens stop working and it cannot get new ones until it is resumed.",
    "app-resumed": "The app was resumed: it can get tokens again.",
    "webhook-resent": "The notification is queued again: it goes out within seconds, with a fresh set of attempts.",
    "customer-created": "The customer was created.",
    "customer-updated": "The customer was saved.",
    "customer-disabled": (
        "The customer was disabled: the tokens apps hold for it stop working, and no app can be opened or "
        "installed for it until it is enabled again."
    ),
    "customer-enabled": "The customer was enabled again.",
    "installed": "The app is installed.",
    "uninstalled": "The app was uninstalled; its codes and tokens there no longer work.",
    "spe-created": "The SPE was created.",
    "user-created": "The account was created.",
    "user-disabled": "The account was disabled and signed out everywhere.",
    "user-enabled": "The account was enabled again.",
    "user-unlocked": "The account was unlocked: it can try to sign in again from every address.",
    "password-set": "The new password is set; that account was signed out everywhere.",
    "password-changed": "Your password was changed; every other session of yours was signed out.",
    "signed-out": "You are signed out.",
}


def _when(at: float | None) -> str:
    if not at:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _instant(at: float | None) -> Markup:
    """A moment to the second, UTC said: ``<time datetime="2026-11-30T14:05:09Z">2026-11-30 14:05:09 UTC</time>``."""
    if not at:
        return Markup("—")
    moment = datetime.fromtimestamp(at, UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def _ago(at: float | None) -> str:
    if not at:
        return "never"
    seconds = max(0, int(time.time() - at))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


# Messages that read as the rest of a sentence about the field ("is required", "must be ...", "has 120
# entries"); any other message is a sentence of its own ("Choose a role."), never glued to the label.
_CONTINUES_LABEL = ("is ", "must ", "has ")


def _say(message: str, label: str) -> str:
    """A field's error as a sentence: "is required" under "Name" reads "Name is required."."""
    text = f"{label} {message}" if label and message.startswith(_CONTINUES_LABEL) else message
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
    trim_blocks=True, lstrip_blocks=True,
)  # fmt: skip
env.filters["when"] = _when
env.filters["ago"] = _ago
env.filters["instant"] = _instant
env.filters["say"] = _say


def security_headers(response: Response, form_origins: Iterable[str] = ()) -> Response:
    form_action = " ".join(["'self'", *sorted(set(form_origins))])
    response.headers.update({
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-store",
    })  # fmt: skip
    return response
