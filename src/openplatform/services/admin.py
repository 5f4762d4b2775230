"""Registering SPEs, customers and apps; installing apps; rotating secrets.

Secrets are returned to the caller exactly once and stored only as a keyed hash
(for the hot path) plus an AES-GCM encryption under the server key (for the
documented install notification, which is signed with the secret itself).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag

from openplatform import events
from openplatform.models import ACTIVE, SUSPENDED, App, Customer, Installation, Spe
from openplatform.security import Keyring, constant_time_equals, new_app_id, new_id, new_secret
from openplatform.services import validation as check
from openplatform.services.stores import Stores
from openplatform.services.validation import NotFound, ValidationError
from openplatform.services.webhooks import INSTALL, UNINSTALL, notification

MAX_GRACE_SECONDS = 7 * 86400


class UndecryptableSecret(Exception):
    """An app secret that neither the server key nor any old server key opens (SPEC §10)."""

    def __init__(self, app_id: str) -> None:
        super().__init__(app_id)
        self.app_id = app_id


class Admin:
    def __init__(self, stores: Stores, keyring: Keyring, webhook_private_networks: bool = False) -> None:
        self.stores = stores
        self.db = stores.management
        self.keyring = keyring
        # OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow: webhook_urls may name private
        # addresses, and the webhook sender delivers there (SPEC §9; development only).
        self.webhook_private_networks = webhook_private_networks

    async def create_spe(self, name: str) -> Spe:
        spe = await self.db.create_spe(new_id("spe_"), check.text("name", name))
        await self.db.audit(events.SPE_CREATED, xspe=spe.xspe)
        return spe

    async def create_customer(self, xspe: str, name: str, contact: str = "") -> Customer:
        if await self.db.get_spe(xspe) is None:
            raise NotFound("no SPE", xspe)
        customer = await self.db.create_customer(
            new_id("cus_"), xspe, check.text("name", name), check.text("contact", contact, 320, required=False)
        )
        await self.db.audit(events.CUSTOMER_CREATED, xspe=xspe, customer_id=customer.customer_id)
        return customer

    def _seal(self, app_id: str, secret: str) -> tuple[str, bytes]:
        return self.keyring.secret_hash(app_id, secret), self.keyring.encrypt(secret, app_id)

    async def create_app(
        self,
        name: str,
        host_url: str,
        scopes: list[str] | tuple[str, ...] = (),
        ip_whitelist: list[str] | tuple[str, ...] = (),
        webhook_url: str | None = None,
        owner_id: str | None = None,
    ) -> tuple[App, str]:
        app = App(
            app_id=new_app_id(), name=check.text("name", name),
            host_url=check.url("host_url", host_url) or "", status=ACTIVE,
            scopes=check.scopes(scopes), ip_whitelist=check.whitelist(ip_whitelist),
            webhook_url=check.webhook_url(webhook_url or "", self.webhook_private_networks), owner_id=owner_id,
        )  # fmt: skip
        secret = new_secret()
        await self.db.create_app(app, *self._seal(app.app_id, secret))
        await self.db.audit(events.APP_CREATED, app_id=app.app_id)
        return app, secret

    async def require_app(self, app_id: str) -> App:
        app = await self.db.get_app(app_id)
        if app is None:
            raise NotFound("no app", app_id)
        return app

    async def rotate_secret(self, app_id: str, grace_seconds: float = 0) -> str:
        await self.require_app(app_id)
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise ValidationError("grace_seconds", f"must be between 0 and {MAX_GRACE_SECONDS}")
        secret = new_secret()
        await self.db.rotate_secret(app_id, *self._seal(app_id, secret), grace=grace_seconds)
        await self.db.audit(events.APP_SECRET_ROTATED, app_id=app_id, grace_seconds=grace_seconds)
        return secret

    async def app_secret(self, app_id: str) -> str:
        """The current secret in clear, for signing notifications; never shown to people.
        Sealed under the current server key or an old one (SPEC §10)."""
        blob = await self.db.current_secret_enc(app_id)
        if blob is None:
            raise NotFound("no app", app_id)
        return self.keyring.decrypt(blob, app_id)

    async def reencrypt_secrets(self) -> int:
        """``openplatform db reencrypt`` (SPEC §10): every app secret (the current ones and those
        in a rotation's grace period) sealed under an old server key is encrypted again under
        the current one, with its verifier hash computed again. Tokens, codes, sessions and admin
        keys cannot be re-keyed: only their digests are stored; they are found under the old
        keys until they expire. Returns how many secrets moved: 0 when all already were under
        the current key, so a second run reports 0. Raises ``UndecryptableSecret`` (and changes
        nothing) when no configured key can open a secret.
        """
        keyring = self.keyring

        def rekey(app_id: str, secret_hash: str, secret_enc: bytes) -> tuple[str, bytes] | None:
            try:
                secret, current = keyring.opened(secret_enc, app_id)
            except InvalidTag:
                raise UndecryptableSecret(app_id) from None
            if current and constant_time_equals(keyring.secret_hash(app_id, secret), secret_hash):
                return None
            return self._seal(app_id, secret)

        return await self.db.rekey_secrets(rekey)

    async def set_status(self, app_id: str, status: str) -> App:
        if status not in (ACTIVE, SUSPENDED):
            raise ValidationError("status", "must be active or suspended")
        await self.require_app(app_id)
        await self.db.set_app_status(app_id, status)
        await self.db.audit(events.APP_RESUMED if status == ACTIVE else events.APP_SUSPENDED, app_id=app_id)
        return await self.require_app(app_id)

    async def _target(self, customer_id: str | None, xspe: str | None) -> tuple[str, str | None]:
        if bool(customer_id) == bool(xspe):
            raise ValidationError("customer_id", "give exactly one of customer_id or xspe")
        if customer_id:
            customer = await self.db.get_customer(customer_id)
            if customer is None:
                raise NotFound("no customer", customer_id)
            return customer.xspe, customer_id
        if await self.db.get_spe(xspe or "") is None:
            raise NotFound("no SPE", xspe)
        return xspe or "", None

    async def install(self, app_id: str, customer_id: str | None = None, xspe: str | None = None) -> Installation:
        app = await self.require_app(app_id)
        target_xspe, target_customer = await self._target(customer_id, xspe)
        existing = await self.db.find_installation(app_id, target_xspe, target_customer)
        if existing is not None:
            return existing  # installing twice is a no-op
        installation = Installation(
            installation_id=new_id("ins_"), app_id=app_id, xspe=target_xspe,
            customer_id=target_customer, installed_at=self.db.clock(),
        )  # fmt: skip
        notify = notification(INSTALL, installation, installation.installed_at) if app.webhook_url else None
        stored = await self.db.install(installation, notify)
        if stored is not installation:
            return stored  # an install at the same time made it first
        await self.db.audit(events.APP_INSTALLED, app_id=app_id, xspe=target_xspe, customer_id=target_customer)
        return installation

    async def uninstall(self, app_id: str, customer_id: str | None = None, xspe: str | None = None) -> Installation:
        target_xspe, target_customer = await self._target(customer_id, xspe)
        installation = await self.db.find_installation(app_id, target_xspe, target_customer)
        if installation is None:
            raise NotFound("the app is not installed there")
        app = await self.require_app(app_id)
        now = self.db.clock()
        notify = notification(UNINSTALL, installation, now) if app.webhook_url else None
        if not await self.db.uninstall(installation, notify, now):
            raise NotFound("the app is not installed there")  # an uninstall at the same time ended it
        await self.db.audit(events.APP_UNINSTALLED, app_id=app_id, xspe=target_xspe, customer_id=target_customer)
        return installation
