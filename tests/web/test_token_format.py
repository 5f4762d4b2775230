"""Bearer values start with their issue time and are stored under a key with the same
start (ordered inserts); tokens stored under the old plain-HMAC key are still honoured."""

from __future__ import annotations

import base64
import secrets
import time

from openplatform.models import TokenRecord
from tests.conftest import Harness


async def test_tokens_and_stored_keys_start_with_the_issue_time(harness: Harness) -> None:
    world = await harness.world()
    first, second = await harness.app_token(world), await harness.app_token(world)
    assert len(first) == 51 and first != second
    stamp = int.from_bytes(base64.urlsafe_b64decode(first[:8]), "big")
    assert abs(stamp / 1000 - time.time()) < 60
    digest = harness.platform.keyring.token_digest(first)
    assert len(digest) == 64 and digest.startswith(base64.urlsafe_b64decode(first[:8]).hex())
    record = await harness.platform.store.inner.get_token(digest)
    assert record is not None and record.app_id == world.app_id


async def test_a_token_stored_before_migration_0003_still_works(harness: Harness) -> None:
    world = await harness.world()
    raw = secrets.token_urlsafe(32)  # the old format: 43 characters, stored under a plain HMAC
    now = harness.clock()
    legacy = TokenRecord(
        digest=harness.platform.keyring.digest(raw), kind="access", app_id=world.app_id,
        scope="customer:read", expires_at=now + 3600, created_at=now,
    )  # fmt: skip
    await harness.platform.store.inner.save_tokens(legacy)
    answer = await harness.client.get(
        f"/api/spe/customer/{world.customer_id}", headers={"Authorization": f"Bearer {raw}"}
    )
    assert answer.json()["code"] == 0, answer.text
    introspected = await harness.client.post(
        "/oauth/introspect", data=dict(app_id=world.app_id, secret=world.secret, token=raw)
    )
    assert introspected.json()["active"] is True, introspected.text
    unknown = await harness.client.post(
        "/oauth/introspect", data=dict(app_id=world.app_id, secret=world.secret, token=secrets.token_urlsafe(32))
    )
    assert unknown.json()["active"] is False
