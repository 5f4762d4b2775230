"""The storage contract (core/store.py), written once and run on memory, SQLite and PostgreSQL.

What the grants rely on a backend for: a code is consumed once however many
requests race for it; a refresh token is rotated once, and every other attempt
learns what the winner did (``RotatedBefore``); ``revoke_family`` ends every
token of the family; a revoking write and its invalidation record go together
(read after the change, the log names it); the cleanup deletes expired rows
only; ``backing`` follows uninstalling and suspending. A new backend passes
these before the core may use it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator

import pytest

from openplatform.core.store import RotatedBefore
from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, SUSPENDED, AuthorizationCode, Backing, TokenRecord
from tests.storage.backends import Adapter, Seeded, code_of, open_backend, token

RACERS = 20  # concurrent calls in the race tests: on SQL they share group commits


@pytest.fixture
async def backend(location: tuple[str, str]) -> AsyncIterator[Adapter]:
    async for adapter in open_backend(*location):
        yield adapter


def code_for(seeded: Seeded, now: float, ttl: float = 300.0) -> AuthorizationCode:
    return AuthorizationCode(
        digest=secrets.token_hex(32), app_id=seeded.app_id, installation_id=seeded.installation_id,
        customer_id=seeded.customer_id, xspe=seeded.xspe, redirect_uri="https://app.example.com/cb",
        scope="install_login", expires_at=now + ttl,
    )  # fmt: skip


async def log_after(backend: Adapter, after_id: int) -> list[tuple[str, str]]:
    """(kind, key) of every invalidation record above ``after_id``."""
    return [(kind, key) for _id, kind, key, _at in await backend.store.invalidations_after(after_id, 1000)]


async def test_a_saved_token_is_found_as_saved(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    access = token(seeded=seeded, family_id="f" * 64, expires_at=now + 3600, at=now)
    refresh = token("refresh", seeded=seeded, family_id="f" * 64, expires_at=now + 86400, at=now)
    app_token = token(expires_at=now + 7200, at=now)
    await backend.store.save_tokens(access, refresh)
    await backend.store.save_tokens(app_token)
    assert await backend.store.get_token(access.digest) == access
    assert await backend.store.get_token(refresh.digest) == refresh
    assert await backend.store.get_token(app_token.digest) == app_token
    assert await backend.store.get_token(secrets.token_hex(32)) is None


async def test_app_and_user_tokens_saved_in_one_batch_are_found_as_saved(backend: Adapter) -> None:
    """An app token's row names only its own columns (``store.INSERT_APP_TOKEN``); saved in the same
    group commit as user tokens (on PostgreSQL two unnest() INSERTs into one table in one statement),
    each reads back as it was saved, the app token's other columns NULL."""
    seeded = await backend.seed()
    now = backend.clock()
    access = token(seeded=seeded, family_id="e" * 64, expires_at=now + 3600, at=now)
    refresh = token("refresh", seeded=seeded, family_id="e" * 64, expires_at=now + 86400, at=now)
    app_tokens = [token(expires_at=now + 7200, at=now) for _ in range(3)]
    await asyncio.gather(backend.store.save_tokens(app_tokens[0]), backend.store.save_tokens(access, refresh),
                         *(backend.store.save_tokens(t) for t in app_tokens[1:]))  # fmt: skip
    for saved in (access, refresh, *app_tokens):
        assert await backend.store.get_token(saved.digest) == saved


async def test_the_backed_reads_give_every_field_its_own_value(backend: Adapter) -> None:
    """``get_token_backed`` and ``get_code_backed`` read a record's columns by position (issue 14):
    a token and a code whose every field differs from the others read back whole, as saved."""
    seeded = await backend.seed()
    now = backend.clock()
    record = TokenRecord(
        digest=secrets.token_hex(32), kind="refresh", app_id=seeded.app_id, scope="install_login customer:read",
        expires_at=now + 86400, installation_id=seeded.installation_id, customer_id=seeded.customer_id,
        xspe=seeded.xspe, family_id="b" * 64, revoked_at=now + 1, rotated_at=now + 2, successor="c" * 64,
        created_at=now + 3, family_expires_at=now + 4,
    )  # fmt: skip
    await backend.store.save_tokens(record)
    live = Backing(app_status=ACTIVE, installed=True, customer_status=ACTIVE, spe_exists=True)
    assert await backend.store.get_token_backed(record.digest) == (record, live)
    code = dataclasses.replace(code_for(seeded, now), code_challenge="a-challenge-of-43-characters-abcdefghijklmno")
    await backend.store.save_code(code)
    assert await backend.store.get_code_backed(code.digest) == (code, live)
    assert await backend.store.consume_code(code.digest)
    found = await backend.store.get_code_backed(code.digest)
    assert found is not None and found[0].used_at is not None
    assert found == (dataclasses.replace(code, used_at=found[0].used_at), live)


async def test_a_taken_digest_is_refused_with_the_same_error_on_every_backend(backend: Adapter) -> None:
    """A code or token whose digest is taken raises ``openplatform.errors.IntegrityError`` (the
    memory backend raised ValueError before) and writes nothing: a pair is saved all or none."""
    seeded = await backend.seed()
    now = backend.clock()
    code = code_for(seeded, now)
    await backend.store.save_code(code)
    with pytest.raises(IntegrityError):
        await backend.store.save_code(dataclasses.replace(code, scope="other"))
    found = await code_of(backend.store, code.digest)
    assert found is not None and found.scope == code.scope
    kept = token(seeded=seeded, family_id="d" * 64, expires_at=now + 3600, at=now)
    await backend.store.save_tokens(kept)
    fresh = token("refresh", seeded=seeded, family_id="d" * 64, expires_at=now + 86400, at=now)
    with pytest.raises(IntegrityError):
        await backend.store.save_tokens(fresh, dataclasses.replace(kept, expires_at=now + 60))
    assert await backend.store.get_token(kept.digest) == kept
    assert await backend.store.get_token(fresh.digest) is None


async def test_a_code_is_consumed_once_however_many_race_for_it(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    code = code_for(seeded, now)
    await backend.store.save_code(code)
    pairs = [
        (token(seeded=seeded, family_id=code.digest, expires_at=now + 3600, at=now),
         token("refresh", seeded=seeded, family_id=code.digest, expires_at=now + 86400, at=now))
        for _ in range(RACERS)
    ]  # fmt: skip
    outcomes = await asyncio.gather(*(backend.store.consume_code(code.digest, *pair) for pair in pairs))
    assert outcomes.count(True) == 1
    winner = pairs[outcomes.index(True)]
    for pair, won in zip(pairs, outcomes, strict=True):  # only the winner's tokens are stored
        for record in pair:
            assert (await backend.store.get_token(record.digest) == record) is won
    used = await code_of(backend.store, code.digest)
    assert used is not None and used.used_at is not None
    assert not await backend.store.consume_code(code.digest, *winner)  # and never again


async def test_an_expired_or_unknown_code_is_not_consumed(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    expired = code_for(seeded, now, ttl=-1)
    await backend.store.save_code(expired)
    record = token(seeded=seeded, family_id=expired.digest, expires_at=now + 3600, at=now)
    assert not await backend.store.consume_code(expired.digest, record)
    assert not await backend.store.consume_code(secrets.token_hex(32), record)
    assert await backend.store.get_token(record.digest) is None
    found = await code_of(backend.store, expired.digest)
    assert found is not None and found.used_at is None


async def test_a_refresh_token_is_rotated_once_and_the_others_learn_what_won(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    family = secrets.token_hex(32)
    old = token("refresh", seeded=seeded, family_id=family, expires_at=now + 86400, at=now)
    await backend.store.save_tokens(old)
    pairs = [
        (token(seeded=seeded, family_id=family, expires_at=now + 3600, at=now),
         token("refresh", seeded=seeded, family_id=family, expires_at=now + 86400, at=now))
        for _ in range(RACERS)
    ]  # fmt: skip
    outcomes = await asyncio.gather(*(backend.store.rotate_refresh(old, *pair) for pair in pairs))
    assert outcomes.count(None) == 1
    won = pairs[outcomes.index(None)]
    rotated = await backend.store.get_token(old.digest)
    assert rotated is not None and rotated.rotated_at is not None and rotated.successor == won[1].digest
    lost = [found for found in outcomes if found is not None]
    assert lost == [RotatedBefore(False, rotated.rotated_at, won[1].digest, True)] * (RACERS - 1)
    for pair in pairs:  # only the winner's pair is stored
        assert (await backend.store.get_token(pair[1].digest) is not None) is (pair is won)

    # The successor rotated in its turn: it is no longer live, which the grant reads as theft.
    assert await backend.store.rotate_refresh(won[1], *pairs[0 if pairs[0] is not won else 1]) is None
    again = await backend.store.rotate_refresh(old, *won)
    assert again == RotatedBefore(False, rotated.rotated_at, won[1].digest, False)

    await backend.store.revoke_family(family, now + 86400)
    assert await backend.store.rotate_refresh(old, *won) == RotatedBefore(True, None, None, False)


async def test_revoke_family_ends_every_token_of_the_family_and_only_them(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    family, other = secrets.token_hex(32), secrets.token_hex(32)
    ours = [token(kind, seeded=seeded, family_id=family, expires_at=now + 3600, at=now)
            for kind in ("access", "refresh", "access", "refresh")]  # fmt: skip
    theirs = [token(kind, seeded=seeded, family_id=other, expires_at=now + 3600, at=now)
              for kind in ("access", "refresh")]  # fmt: skip
    await backend.store.save_tokens(*ours, *theirs)
    last = await backend.store.last_invalidation_id()
    await backend.store.revoke_family(family, now + 3600)
    for record in ours:
        found = await backend.store.get_token(record.digest)
        assert found is not None and found.revoked_at is not None
        backed = await backend.store.get_token_backed(record.digest)
        assert backed is not None and backed[0] == found
    for record in theirs:
        assert await backend.store.get_token(record.digest) == record
    assert await log_after(backend, last) == [("family", family)]


async def test_a_token_the_family_gains_after_its_revocation_is_revoked(backend: Adapter) -> None:
    """A rotation read before its family's revocation and committed after it (another node, the
    next group commit) adds a pair to a revoked family: the pair is revoked, and cannot rotate."""
    seeded = await backend.seed()
    now = backend.clock()
    family = secrets.token_hex(32)
    first = token("refresh", seeded=seeded, family_id=family, expires_at=now + 3600, at=now)
    await backend.store.save_tokens(first)
    await backend.store.revoke_family(family, now + 3600)
    backend.clock.advance(5)
    later = [token(kind, seeded=seeded, family_id=family, expires_at=now + 3600, at=now + 5)
             for kind in ("access", "refresh")]  # fmt: skip
    await backend.store.save_tokens(*later)
    revoked = await backend.store.get_token(first.digest)
    assert revoked is not None and revoked.revoked_at is not None
    for record in later:
        found = await backend.store.get_token(record.digest)
        assert found is not None and found.revoked_at == revoked.revoked_at  # the family's first revocation
        backed = await backend.store.get_token_backed(record.digest)
        assert backed is not None and backed[0].revoked_at == revoked.revoked_at
    successor = [token(kind, seeded=seeded, family_id=family, expires_at=now + 3600, at=now + 5)
                 for kind in ("access", "refresh")]  # fmt: skip
    assert await backend.store.rotate_refresh(later[1], *successor) == RotatedBefore(True, None, None, False)
    await backend.store.revoke_family(family, now + 3600)  # again: the first revocation stays
    again = await backend.store.get_token(later[0].digest)
    assert again is not None and again.revoked_at == revoked.revoked_at


async def test_the_cleanup_forgets_a_familys_revocation_after_its_last_token(backend: Adapter) -> None:
    """A family's revocation is kept until its end (``ends``) is ``keep_seconds`` past, as its
    tokens are; one whose end is not known (None) is kept for ever."""
    seeded = await backend.seed()
    now = backend.clock()
    hour = 3600.0
    ending, endless = secrets.token_hex(32), secrets.token_hex(32)
    await backend.store.revoke_family(ending, now + hour)
    await backend.store.revoke_family(endless, None)

    async def revoked(family: str) -> bool:
        record = token(seeded=seeded, family_id=family, expires_at=backend.clock() + 10 * hour, at=backend.clock())
        await backend.store.save_tokens(record)
        found = await backend.store.get_token(record.digest)
        assert found is not None
        return found.revoked_at is not None

    backend.clock.advance(hour + 30 * 60)  # the family's end is past, but not by keep_seconds
    await backend.store.cleanup(keep_seconds=hour, batch_size=1, rest=0)
    assert await revoked(ending) and await revoked(endless)
    backend.clock.advance(hour)
    counts = await backend.store.cleanup(keep_seconds=hour, batch_size=1, rest=0)
    assert set(counts) == {"codes", "tokens", "invalidations", "audit_events"}  # SPEC §8's four, no more
    assert not await revoked(ending)
    assert await revoked(endless)


async def test_a_revocation_and_its_invalidation_record_are_written_together(backend: Adapter) -> None:
    """Read after the change, the log names it: a cache following the log drops the entry."""
    seeded = await backend.seed()
    now = backend.clock()
    family = secrets.token_hex(32)
    access = token(seeded=seeded, family_id=family, expires_at=now + 3600, at=now)
    refresh = token("refresh", seeded=seeded, family_id=family, expires_at=now + 86400, at=now)
    app_token = token(expires_at=now + 3600, at=now)
    await backend.store.save_tokens(access, refresh, app_token)

    last = await backend.store.last_invalidation_id()
    await backend.store.revoke_token(app_token)  # RFC 7009: an access token alone
    assert await log_after(backend, last) == [("token", app_token.digest)]
    revoked = await backend.store.get_token(app_token.digest)
    assert revoked is not None and revoked.revoked_at is not None
    assert await backend.store.get_token(access.digest) == access

    last = await backend.store.last_invalidation_id()
    await backend.store.revoke_token(refresh)  # a refresh token: its whole family
    assert await log_after(backend, last) == [("family", family)]
    for record in (access, refresh):
        found = await backend.store.get_token(record.digest)
        assert found is not None and found.revoked_at is not None

    records = await backend.store.invalidations_after(0, 1000)
    assert [r[0] for r in records] == sorted(r[0] for r in records)  # in id order
    assert records[-1][0] == await backend.store.last_invalidation_id()
    assert abs(records[-1][3] - backend.clock()) < 60  # ``at``: when it was written, in UNIX seconds
    assert await backend.store.invalidations_after(records[-1][0], 1000) == []
    assert len(await backend.store.invalidations_after(0, 1)) == 1


async def test_the_cleanup_deletes_expired_rows_only(backend: Adapter) -> None:
    seeded = await backend.seed()
    now = backend.clock()
    hour = 3600.0
    long_expired = token(seeded=seeded, family_id="a" * 64, expires_at=now - 2 * hour, at=now - 3 * hour)
    just_expired = token(seeded=seeded, family_id="a" * 64, expires_at=now - 60, at=now - hour)  # kept an hour
    live = token(seeded=seeded, family_id="a" * 64, expires_at=now + 30 * 86400, at=now)
    await backend.store.save_tokens(long_expired, just_expired, live)
    old_code, fresh_code = code_for(seeded, now - 2 * hour), code_for(seeded, now)
    for code in (old_code, fresh_code):
        await backend.store.save_code(code)

    counts = await backend.store.cleanup(keep_seconds=hour, batch_size=2, rest=0)
    assert counts == {"codes": 1, "tokens": 1, "invalidations": 0, "audit_events": 0}
    assert await backend.store.get_token(long_expired.digest) is None
    assert await backend.store.get_token(just_expired.digest) == just_expired
    assert await backend.store.get_token(live.digest) == live
    assert await code_of(backend.store, old_code.digest) is None
    assert await code_of(backend.store, fresh_code.digest) == fresh_code

    await backend.store.revoke_token(live)
    assert await backend.store.invalidations_after(0, 1000) != []
    backend.clock.advance(2 * hour)  # every invalidation record is now older than an hour
    counts = await backend.store.cleanup(keep_seconds=hour, batch_size=2, rest=0)
    assert counts["tokens"] == 1 and counts["invalidations"] >= 1  # just_expired's hour is over
    assert await backend.store.invalidations_after(0, 1000) == []
    kept = await backend.store.get_token(live.digest)
    assert kept is not None and kept.revoked_at is not None  # revoked but unexpired: kept
    assert await backend.store.cleanup(keep_seconds=hour, rest=0) == {
        "codes": 0, "tokens": 0, "invalidations": 0, "audit_events": 0,
    }  # fmt: skip


async def test_the_cleanup_deletes_audit_events_older_than_the_retention(backend: Adapter) -> None:
    """Audit events go once older than ``audit_retention_seconds``; younger ones stay (SPEC §8)."""
    day = 86400.0
    backend.store.audit("token.granted", app_id="app-a")  # distinct: SQL counts identical events as one row
    backend.store.audit("token.granted", app_id="app-b")
    backend.clock.advance(10 * day)
    backend.store.audit("token.granted", app_id="app-c")
    await backend.flush()
    backend.clock.advance(175 * day)  # the first two are 185 days old, the third 175

    assert (await backend.store.cleanup(audit_retention_seconds=180 * day, rest=0))["audit_events"] == 2
    assert (await backend.store.cleanup(audit_retention_seconds=180 * day, rest=0))["audit_events"] == 0
    backend.clock.advance(6 * day)
    assert (await backend.store.cleanup(audit_retention_seconds=180 * day, rest=0))["audit_events"] == 1


async def test_backing_follows_suspending_and_uninstalling(backend: Adapter) -> None:
    seeded = await backend.seed()
    store = backend.store

    async def backing() -> Backing:
        return await store.backing(seeded.app_id, seeded.installation_id, seeded.customer_id, seeded.xspe, fresh=True)

    assert await backing() == Backing(app_status=ACTIVE, installed=True, customer_status=ACTIVE, spe_exists=True)
    elsewhere = await store.backing(seeded.app_id, seeded.installation_id, seeded.customer_id, "spe_unknown")
    assert elsewhere == Backing(ACTIVE, True, None, False)  # the customer is not in that SPE
    assert [i.installation_id for i in await store.active_installations(seeded.app_id)] == [seeded.installation_id]

    last = await store.last_invalidation_id()
    await backend.suspend(seeded)
    assert await backing() == Backing(app_status=SUSPENDED, installed=True, customer_status=ACTIVE, spe_exists=True)
    assert ("app", seeded.app_id) in await log_after(backend, last)

    last = await store.last_invalidation_id()
    await backend.uninstall(seeded)
    assert await backing() == Backing(app_status=SUSPENDED, installed=False, customer_status=ACTIVE, spe_exists=True)
    assert await store.active_installations(seeded.app_id) == ()
    assert ("installation", seeded.installation_id) in await log_after(backend, last)
    gone = await store.backing(secrets.token_hex(16), "ins_unknown", None, None)
    assert gone == Backing(app_status=None, installed=False, customer_status=None, spe_exists=False)


async def test_installation_for_is_the_customers_own_else_the_spe_wide_one(backend: Adapter) -> None:
    """What a code stands on (GET /oauth/connect): the customer's own live installation, else the
    SPE-wide one, else none; never another customer's, nor another SPE's."""
    seeded = await backend.seed()  # installed for its one customer
    store, app, xspe = backend.store, seeded.app_id, seeded.xspe

    async def found(customer_id: str, in_spe: str = xspe) -> str | None:
        installation = await store.installation_for(app, in_spe, customer_id)
        return installation.installation_id if installation else None

    other = await backend.add_customer(seeded)
    assert await found(seeded.customer_id) == seeded.installation_id
    assert await found(other) is None  # not another customer's installation
    assert await found(seeded.customer_id, "spe_other") is None
    assert await store.installation_for("app_unknown", xspe, seeded.customer_id) is None
    spe_wide = await backend.install_spe_wide(seeded)
    assert await found(other) == spe_wide
    assert await found(seeded.customer_id) == seeded.installation_id  # its own first
    assert await found(other, "spe_other") is None
    await backend.uninstall(seeded)
    assert await found(seeded.customer_id) == spe_wide
    installation = await store.installation_for(app, xspe, seeded.customer_id)
    assert installation is not None and (installation.app_id, installation.xspe, installation.customer_id) == (
        app, xspe, None,
    )  # fmt: skip


async def test_a_code_or_token_is_read_with_its_backing(backend: Adapter) -> None:
    """What the exchange and the rotation read in one go: the record as saved and the same
    ``Backing`` as ``backing(fresh=True)``, which follows suspending and uninstalling at once."""
    seeded = await backend.seed()
    store = backend.store
    now = backend.clock()
    code = code_for(seeded, now)
    await store.save_code(code)
    refresh = token("refresh", seeded=seeded, family_id=code.digest, expires_at=now + 86400, at=now)
    app_token = token(expires_at=now + 7200, at=now)
    await store.save_tokens(refresh, app_token)

    async def both() -> tuple[Backing, Backing, Backing]:
        found_code, found_token = await store.get_code_backed(code.digest), await store.get_token_backed(refresh.digest)
        assert found_code is not None and found_code[0] == code
        assert found_token is not None and found_token[0].digest == refresh.digest  # revoked by the uninstall
        fresh = await store.backing(seeded.app_id, seeded.installation_id, seeded.customer_id, seeded.xspe, fresh=True)
        return found_code[1], found_token[1], fresh

    live = Backing(app_status=ACTIVE, installed=True, customer_status=ACTIVE, spe_exists=True)
    assert await both() == (live, live, live)
    assert await store.get_token_backed(refresh.digest) == (refresh, live)
    await backend.suspend(seeded)
    await backend.uninstall(seeded)
    gone = Backing(app_status=SUSPENDED, installed=False, customer_status=ACTIVE, spe_exists=True)
    assert await both() == (gone, gone, gone)
    found_app_token = await store.get_token_backed(app_token.digest)
    assert found_app_token is not None and found_app_token[0] == app_token and not found_app_token[1].installed
    assert await store.get_code_backed(secrets.token_hex(32)) is None
    assert await store.get_token_backed(secrets.token_hex(32)) is None
