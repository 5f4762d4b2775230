"""Server key rotation in one process (SPEC §10; the whole procedure with real servers is in
tests/multinode/test_key_rotation_procedure.py).

Tokens, codes, refresh tokens, sessions, admin keys and app secrets made under key A keep
working once the server runs with ``SECRET_KEY=B`` and ``OLD_SECRET_KEYS=A``; ``reencrypt``
moves every app secret to B, all or nothing; once A is dropped, what was made after the
switch still works and what only A could find is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from openplatform.config import Settings
from openplatform.security import Keyring
from openplatform.services.accounts import build_accounts
from openplatform.services.admin import UndecryptableSecret
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.app import create_app
from tests.conftest import TEST_SECRET_KEY, FakeClock, Harness, World

# A server restarted under other keys on the same database (and its secrets read in SQL):
# memory:// keeps nothing across a restart.
pytestmark = pytest.mark.sql

KEY_A = TEST_SECRET_KEY  # the harness's key: what everything below is first made under
KEY_B = "rotated-server-key-B-0123456789abcdefghijklmnop"
KEY_C = "unrelated-server-key-C-0123456789abcdefghijklmn"


# ------------------------------------------------------------------ the keyring


async def test_an_old_key_is_tried_only_when_the_current_key_misses() -> None:
    made_under_a, made_under_b = Keyring(KEY_A.encode()), Keyring(KEY_B.encode())
    keyring = Keyring(KEY_B.encode(), [KEY_A.encode(), KEY_B.encode(), KEY_A.encode()])
    assert len(keyring.old) == 1  # the current key and repeats are not tried again
    stored = {made_under_a.token_digest("tok-a"): "A", made_under_b.token_digest("tok-b"): "B"}
    asked: list[str] = []

    async def fetch(digest: str) -> str | None:
        asked.append(digest)
        return stored.get(digest)

    assert await keyring.find(fetch, Keyring.token_digest, "tok-b") == "B"
    assert len(asked) == 1  # made under the current key: one lookup, whatever the old keys
    asked.clear()
    assert await keyring.find(fetch, Keyring.token_digest, "tok-a") == "A"
    assert len(asked) == 2
    asked.clear()
    assert await keyring.find(fetch, Keyring.token_digest, "unknown") is None
    assert len(asked) == 2
    assert await Keyring(KEY_B.encode()).find(fetch, Keyring.token_digest, "tok-a") is None  # A dropped


def test_secrets_sealed_under_an_old_key_open_and_say_so() -> None:
    sealed_a = Keyring(KEY_A.encode()).encrypt("s3cret", "app-1")
    keyring = Keyring(KEY_B.encode(), [KEY_C.encode(), KEY_A.encode()])
    assert keyring.opened(sealed_a, "app-1") == ("s3cret", False)
    assert keyring.opened(keyring.encrypt("new", "app-1"), "app-1") == ("new", True)  # sealed under the current key
    with pytest.raises(InvalidTag):  # the associated data is unchanged: bound to its app
        keyring.decrypt(sealed_a, "app-2")
    with pytest.raises(InvalidTag):
        Keyring(KEY_B.encode(), [KEY_C.encode()]).decrypt(sealed_a, "app-1")


def test_the_old_keys_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENPLATFORM_OLD_SECRET_KEYS", f" {KEY_A} ,{KEY_C}")
    assert Settings().old_secret_key_list == (KEY_A.encode(), KEY_C.encode())
    assert Settings(old_secret_keys="").old_secret_key_list == ()
    for bad in ("a,,b", "a,", ",a", " , "):
        with pytest.raises(ValueError, match="old_secret_keys"):
            Settings(old_secret_keys=bad)


# ------------------------------------------------------- a server under a key


@contextlib.asynccontextmanager
async def serving(settings: Settings, **keys: str) -> AsyncIterator[Harness]:
    """The app in this process on the harness's database, under other keys (``secret_key``,
    ``old_secret_keys``): what a restarted server would be."""
    app = create_app(settings.model_copy(update=keys))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, FakeClock())


def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert body["code"] == 0, body
    return body["result"]


async def customer(harness: Harness, world: World, token: str) -> int:
    response = await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
    return int(response.json()["code"])


async def introspect(harness: Harness, world: World, token: str) -> bool:
    response = await harness.client.post("/oauth/introspect", data={"token": token}, auth=(world.app_id, world.secret))
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def secret_rows(harness: Harness) -> list[tuple[str, str, bytes]]:
    rows = await harness.platform.store.inner.driver.fetch(
        "SELECT app_id, secret_hash, secret_enc FROM app_secrets ORDER BY id"
    )
    return [(row["app_id"], row["secret_hash"], bytes(row["secret_enc"])) for row in rows]


async def test_what_key_a_made_works_under_b_then_reencrypt_then_a_is_dropped(
    harness: Harness, settings: Settings
) -> None:
    # Under key A: an app (its secret rotated with a grace period: two secrets on file), an
    # app token, a user pair, a pair to revoke later, a code not yet exchanged.
    world = await harness.world()
    other = await harness.world()
    previous_secret = world.secret
    world.secret = await harness.admin.rotate_secret(world.app_id, grace_seconds=3600)
    app_token_a = await harness.app_token(world)
    pair_a = await harness.user_tokens(world)
    doomed_a = await harness.user_tokens(world)
    code_a = await harness.code(world)

    async with serving(settings, secret_key=KEY_B, old_secret_keys=KEY_A) as b:
        # Open API, introspection, client authentication with both live secrets, the code.
        assert await customer(b, world, pair_a["access_token"]) == 0
        assert ok(await b.client.get("/api/spe/customers", params={"access_token": app_token_a}))["total"] >= 1
        assert await introspect(b, world, pair_a["refresh_token"])
        pair_from_code = ok(await b.exchange(world, code_a))
        assert await customer(b, world, pair_from_code["access_token"]) == 0
        assert ok(await b.client.post("/oauth/credit/token", data=dict(
            app_id=world.app_id, secret=previous_secret, grant_type="client_credential")))  # fmt: skip
        # Refresh rotation of an A-made refresh token, and its retry within the leeway: the same pair.
        rotated = ok(await b.refresh(world, pair_a["refresh_token"]))
        assert ok(await b.refresh(world, pair_a["refresh_token"])) == rotated
        # RFC 7009 revocation of an A-made token.
        revoke = await b.client.post(
            "/oauth/revoke", data={"token": doomed_a["refresh_token"]}, auth=(world.app_id, world.secret)
        )
        assert revoke.status_code == 200
        assert await customer(b, world, doomed_a["access_token"]) == 40102
        # The secret in clear, for signing notifications and launches.
        assert await b.admin.app_secret(world.app_id) == world.secret
        app_token_b = await b.app_token(world)

        before = await secret_rows(b)
        assert await b.admin.reencrypt_secrets() == 3  # both secrets of one app, the other app's one
        after = await secret_rows(b)
        assert [row[0] for row in after] == [row[0] for row in before]
        assert all(new[1] != old[1] and new[2] != old[2] for old, new in zip(before, after, strict=True))
        assert await b.admin.reencrypt_secrets() == 0  # idempotent: nothing left under an old key
        assert await secret_rows(b) == after

    async with serving(settings, secret_key=KEY_B) as only_b:
        # Made (or re-keyed) after the switch: works.
        assert await customer(only_b, world, rotated["access_token"]) == 0
        assert await customer(only_b, world, pair_from_code["access_token"]) == 0
        assert ok(await only_b.client.get("/api/spe/customers", params={"access_token": app_token_b}))["total"] >= 1
        assert ok(await only_b.refresh(world, rotated["refresh_token"]))["access_token"]
        assert await only_b.admin.app_secret(world.app_id) == world.secret
        assert await only_b.admin.app_secret(other.app_id) == other.secret
        await only_b.app_token(world)
        await only_b.app_token(other)
        assert ok(await only_b.client.post("/oauth/credit/token", data=dict(
            app_id=world.app_id, secret=previous_secret, grant_type="client_credential")))  # fmt: skip
        # Only key A could find these: refused, as documented.
        assert await customer(only_b, world, pair_a["access_token"]) == 40102
        response = await only_b.client.get("/api/spe/customers", params={"access_token": app_token_a})
        assert response.json()["code"] == 40102
        assert not await introspect(only_b, world, pair_a["access_token"])


async def test_a_retry_of_a_rotation_made_under_the_old_key_gets_that_pair(
    harness: Harness, settings: Settings
) -> None:
    """The first request rotated on a node still under A (or just before the restart); its
    retry within the leeway reaches a node under B: the same pair, not a theft alarm."""
    world = await harness.world()
    pair = await harness.user_tokens(world)
    first = ok(await harness.refresh(world, pair["refresh_token"]))
    async with serving(settings, secret_key=KEY_B, old_secret_keys=KEY_A) as b:
        again = ok(await b.refresh(world, pair["refresh_token"]))
        assert again == first
        assert await customer(b, world, again["access_token"]) == 0  # the family was not revoked
        # And the other way round (a node under A that knows B, during a rolling switch).
        second = ok(await b.refresh(world, first["refresh_token"]))
    async with serving(settings, secret_key=KEY_A, old_secret_keys=KEY_B) as a:
        assert ok(await a.refresh(world, first["refresh_token"])) == second
    async with serving(settings, secret_key=KEY_B) as only_b:  # without A, that retry is a reuse
        assert (await only_b.refresh(world, pair["refresh_token"])).json()["code"] == 40006


async def test_sessions_and_admin_keys_made_under_the_old_key_still_sign_in(
    harness: Harness, settings: Settings
) -> None:
    accounts = build_accounts(harness.admin.stores, harness.admin.keyring)
    await accounts.create_user("ops@example.com", "admin", "correct horse battery staple")
    signed_in = await accounts.sign_in("ops@example.com", "correct horse battery staple")
    key, value = await AdminKeys(harness.admin.stores, harness.admin.keyring).create("scraper")

    async def found(keys: dict[str, str], check: Callable[[Harness], Awaitable[bool]]) -> bool:
        async with serving(settings, **keys) as server:
            return await check(server)

    async def session(server: Harness) -> bool:
        return (
            await build_accounts(server.admin.stores, server.admin.keyring).session(signed_in.cookie_value) is not None
        )

    async def admin_key(server: Harness) -> bool:
        found = await AdminKeys(server.admin.stores, server.admin.keyring).authenticate(f"Bearer {value}")
        return found is not None and found.key_id == key.key_id

    for check in (session, admin_key):
        assert await found({"secret_key": KEY_B, "old_secret_keys": KEY_A}, check)
        assert not await found({"secret_key": KEY_B}, check)  # made under A alone: gone with it


async def test_reencrypt_with_keys_that_cannot_open_a_secret_changes_nothing(
    harness: Harness, settings: Settings
) -> None:
    await harness.world()
    world = await harness.world()
    async with serving(settings, secret_key=KEY_B, old_secret_keys=KEY_A) as b:
        await b.admin.rotate_secret(world.app_id, grace_seconds=60)  # one secret under B already
        before = await secret_rows(b)
    async with serving(settings, secret_key=KEY_C, old_secret_keys=KEY_B) as c:  # A is missing
        with pytest.raises(UndecryptableSecret) as refused:
            await c.admin.reencrypt_secrets()
        assert refused.value.app_id in {row[0] for row in before}
        assert await secret_rows(c) == before  # not even the B-sealed secret was moved to C
