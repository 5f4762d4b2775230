"""Signed, expiring cookies: the app keeps its state in the browser, not in a server store.

Value: ``base64url(json) "." hex(HMAC-SHA256(key, base64url(json)))`` with an
``exp`` inside. The key is derived from the app secret, so rotating the secret
signs everyone out. The JSON is readable by the browser; nothing secret goes in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

STATE_COOKIE = "partner_connect"  # between the launch and the callback
SESSION_COOKIE = "partner_session"  # who is using the app
STATE_MAX_AGE = 600
SESSION_MAX_AGE = 8 * 3600


class CookieJar:
    def __init__(self, app_secret: str, secure: bool) -> None:
        self.key = hmac.new(app_secret.encode(), b"partner_app cookies", hashlib.sha256).digest()
        self.secure = secure

    def _mac(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def dumps(self, data: dict[str, Any], max_age: int) -> str:
        raw = json.dumps({**data, "exp": int(time.time()) + max_age}, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{payload}.{self._mac(payload)}"

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The data, or None when the cookie is missing, altered or expired."""
        payload, _, mac = (value or "").partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(data, dict) or data.get("exp", 0) < time.time():
            return None
        return data

    def read(self, request: Request, name: str) -> dict[str, Any] | None:
        return self.loads(request.cookies.get(name))

    def write(self, response: Response, name: str, data: dict[str, Any], max_age: int) -> None:
        response.set_cookie(
            name, self.dumps(data, max_age), max_age=max_age, httponly=True, secure=self.secure, samesite="lax"
        )

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, httponly=True, secure=self.secure, samesite="lax")
