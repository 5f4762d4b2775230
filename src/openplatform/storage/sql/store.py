"""The hot path on lean driver statements: reads, and writes as group-commit operations.

Every write that must reach other processes' caches (a revocation) also appends
to the ``invalidations`` log in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from openplatform.config import AUDIT_RETENTION_SECONDS, CLEANUP_BATCH_SIZE, CLEANUP_KEEP_SECONDS
from openplatform.core.store import RotatedBefore
from openplatform.models import (
    App,
    AuthorizationCode,
    Backing,
    Customer,
    Installation,
    Installations,
    TokenRecord,
    backing_of,
    read_backing,
)
from openplatform.storage.sql.cleanup import cleanup_pass
from openplatform.storage.sql.driver import Claim, Driver, Insert, InsertsOnly, InsertSpec, KeyedRead, Sql, Tx
from openplatform.storage.sql.rows import (
    TOKEN_COLUMNS,
    app_from_row,
    audit_detail,
    customer_from_row,
    installation_from_row,
    token_from_row,
    token_params,
)

# The hot path's INSERTs, described for the writers (the PostgreSQL one sends many rows as one
# unnest() statement); their columns and types are checked against schema.py by a test.
INSERT_TOKEN = InsertSpec("tokens", tuple((name, "float8" if name.endswith("_at") else "text")
                                          for name in TOKEN_COLUMNS.split(", ")))  # fmt: skip
# An app token's row names only the columns it sets: the eight a user token adds (installation,
# customer, SPE, family, revocation, rotation, successor, family end) are NULL at issue, and
# sqlite3 binds each None through its adapter lookup, about 1,170 instructions a value (measured
# with callgrind, docs/benchmarks.md "What a rotation's rows cost SQLite"). Left out, they take
# the column default, NULL. On PostgreSQL a batch with both kinds sends one more unnest() INSERT
# in the same statement.
INSERT_APP_TOKEN = InsertSpec("tokens", (
    ("digest", "text"), ("kind", "text"), ("app_id", "text"), ("scope", "text"), ("created_at", "float8"),
    ("expires_at", "float8"),
))  # fmt: skip
INSERT_CODE = InsertSpec("auth_codes", (
    ("digest", "text"), ("app_id", "text"), ("installation_id", "text"), ("customer_id", "text"), ("xspe", "text"),
    ("redirect_uri", "text"), ("scope", "text"), ("code_challenge", "text"), ("expires_at", "float8"),
))  # fmt: skip
INSERT_AUDIT = InsertSpec("audit_events", (
    ("at", "float8"), ("event", "text"), ("app_id", "text"), ("xspe", "text"), ("customer_id", "text"),
    ("ip", "text"), ("detail", "text"), ("occurrences", "int4"),
))  # fmt: skip
INSERT_INVALIDATION = InsertSpec("invalidations", (("at", "float8"), ("kind", "text"), ("key", "text")))
# SPEC §8: app, installation, customer, SPE of a user token or code, in one round trip.
BACKING = (
    "SELECT (SELECT status FROM apps WHERE app_id = ?) AS app_status, "
    "(SELECT 1 FROM installations WHERE installation_id = ? AND app_id = ? AND uninstalled_at IS NULL) AS installed, "
    "(SELECT status FROM customers WHERE customer_id = ? AND xspe = ?) AS customer_status, "
    "(SELECT 1 FROM spes WHERE xspe = ?) AS spe_exists"
)
INSTALLATION_COLUMNS = "installation_id, app_id, xspe, customer_id, installed_at, uninstalled_at"
# The customer's own live installation (rank 0) and the SPE-wide one (rank 1): two probes of
# ix_installations_app (app_id, xspe, customer_id), however many installations the app has.
_LIVE_IN = f"SELECT {INSTALLATION_COLUMNS}, {{rank}} AS rank FROM installations WHERE app_id = ? AND xspe = ? AND "
INSTALLATION_FOR = (
    _LIVE_IN.format(rank=0) + "customer_id = ? AND uninstalled_at IS NULL UNION ALL "
    + _LIVE_IN.format(rank=1) + "customer_id IS NULL AND uninstalled_at IS NULL"
)  # fmt: skip
# A code or a token with the same four answers as BACKING, in one statement (one read transaction on
# SQLite, one round trip on PostgreSQL, instead of two): what the exchange and the rotation read.
_BACKING_OF = (
    "(SELECT status FROM apps WHERE app_id = {t}.app_id) AS app_status, "
    "(SELECT 1 FROM installations WHERE installation_id = {t}.installation_id AND app_id = {t}.app_id "
    "AND uninstalled_at IS NULL) AS installed, "
    "(SELECT status FROM customers WHERE customer_id = {t}.customer_id AND xspe = {t}.xspe) AS customer_status, "
    "(SELECT 1 FROM spes WHERE xspe = {t}.xspe) AS spe_exists"
)
# A code's columns in AuthorizationCode's field order: get_code_backed unpacks the row by position.
CODE_COLUMNS = ", ".join(f"auth_codes.{name}" for name in (
    "digest", "app_id", "installation_id", "customer_id", "xspe", "redirect_uri", "scope", "expires_at",
    "code_challenge", "used_at",
))  # fmt: skip
# Keyed: the PostgreSQL driver sends the reads of the codes (or tokens) asked for together as one
# statement for an array of digests (postgres.KeyedReads; docs/benchmarks.md, "PostgreSQL's read of
# a code or token with its backing").
_CODE_BACKED = f"SELECT {CODE_COLUMNS}, {_BACKING_OF.format(t='auth_codes')} FROM auth_codes WHERE digest "
CODE_BACKED = KeyedRead(_CODE_BACKED + "= ?", _CODE_BACKED + "= ANY($1::text[])", "digest")
# A token's revocation as every read sees it: its own, else its family's (schema.py, revoked_families).
# COALESCE looks the family up only for a token not revoked itself; an app token (no family) finds none.
_FAMILY_REVOKED_AT = "(SELECT f.revoked_at FROM revoked_families AS f WHERE f.family_id = tokens.family_id)"
TOKEN_REVOKED_AT = f"COALESCE(tokens.revoked_at, {_FAMILY_REVOKED_AT})"
# TOKEN_COLUMNS as read: revoked_at through TOKEN_REVOKED_AT, under its own name.
TOKEN_READ = ", ".join(
    f"{TOKEN_REVOKED_AT} AS revoked_at" if c == "revoked_at" else f"tokens.{c}" for c in TOKEN_COLUMNS.split(", ")
)
_TOKEN_BACKED = f"SELECT {TOKEN_READ}, {_BACKING_OF.format(t='tokens')} FROM tokens WHERE digest "
TOKEN_BACKED = KeyedRead(_TOKEN_BACKED + "= ?", _TOKEN_BACKED + "= ANY($1::text[])", "digest")


# A family revoked again keeps its first revocation (and its end: the same family, the same end).
REVOKE_FAMILY = Sql(
    "INSERT INTO revoked_families (family_id, revoked_at, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (family_id) DO NOTHING",
    "revoked_families",
)
REVOKE_TOKEN = Sql("UPDATE tokens SET revoked_at = ? WHERE digest = ?", "tokens")
# Neither a token revoked itself nor one of a revoked family rotates (a rotation read before the
# family's revocation and claimed after it gets ROTATED_STATE's "revoked"). A scalar subquery, not
# NOT EXISTS: PostgreSQL probes the family's key for each row claimed, where an anti-join under a
# batch claim's settings (no nested loops, postgres.CLAIM_SETTINGS) read all of revoked_families.
_LIVE = f"rotated_at IS NULL AND revoked_at IS NULL AND {_FAMILY_REVOKED_AT} IS NULL"
ROTATE = Sql(
    f"UPDATE tokens SET rotated_at = ?, successor = ? WHERE digest = ? AND {_LIVE}", "tokens", "revoked_families"
)
ROTATED_STATE = Sql(
    f"SELECT rotated_at, {TOKEN_REVOKED_AT} AS revoked_at, successor FROM tokens WHERE digest = ?",
    "tokens", "revoked_families",
)  # fmt: skip
SUCCESSOR_LIVE = Sql(f"SELECT 1 AS live FROM tokens WHERE digest = ? AND {_LIVE}", "tokens", "revoked_families")


async def revoke_family_in(tx: Tx, family_id: str, ends: float | None, now: float) -> None:
    """Revoke the family ``family_id`` (one row; ``ends``: when its last token expires, None when
    not known) and tell the other nodes' caches."""
    await tx.execute(REVOKE_FAMILY, family_id, now, ends)
    await tx.insert(INSERT_INVALIDATION, (now, "family", family_id))


CLAIM_CODE = Sql(
    "UPDATE auth_codes SET used_at = ? WHERE digest = ? AND used_at IS NULL AND expires_at > ?", "auth_codes"
)


class ConsumeCode(Claim):
    """Consume a code (a conditional UPDATE: exactly one consumption wins) and insert its tokens.

    Answers whether this operation consumed it; what a failed consumption means
    (a replay) is the grant's to decide. On PostgreSQL each UPDATE would be a
    round trip inside the batch's transaction, so the writer claims the codes of
    all ``ConsumeCode`` operations of a batch with one ``claim_many`` statement
    first (in the order of the batch, duplicates included, exactly as one at a
    time would) and each operation finds its answer in ``tx.claimed`` (``driver.Claim``).
    """

    # PostgreSQL's alone, so its parameters are written $n: $1 (the keys) twice. ``c.digest = ANY($1)``
    # repeats the join's condition so that any plan, even one made for an empty table, finds the rows
    # by their keys: the writer runs it on one cached generic plan (postgres.CLAIM_SETTINGS).
    claim_many = Sql(
        "UPDATE auth_codes AS c SET used_at = v.at FROM unnest($1::text[], $2::float8[]) AS v(digest, at) "
        "WHERE c.digest = ANY($1::text[]) AND c.digest = v.digest AND c.used_at IS NULL AND c.expires_at > v.at "
        "RETURNING c.digest",
        "auth_codes",
    )
    __slots__ = ("digest", "now", "records")

    def __init__(self, digest: str, now: float, records: tuple[TokenRecord, ...]) -> None:
        self.digest, self.now, self.records = digest, now, records

    @property
    def claim_args(self) -> tuple[str, float]:
        return self.digest, self.now

    async def __call__(self, tx: Tx) -> bool:
        consumed = tx.claimed.get(self)  # the writer claimed the batch's codes together
        if consumed is None:
            consumed = await tx.execute(CLAIM_CODE, self.now, self.digest, self.now) == 1
        if consumed and self.records:
            spec, rows = token_rows(self.records)
            await tx.insert(spec, *rows)
        return consumed


class RotateRefresh(Claim):
    """Rotate a refresh token (a conditional UPDATE: exactly one rotation wins) and insert the new pair.

    Answers None when this operation rotated it, else the state the winner left
    (``RotatedBefore``). As with ``ConsumeCode``, the PostgreSQL writer claims the
    tokens of all the batch's rotations with one ``claim_many`` statement first:
    one UPDATE round trip per rotation was the refresh grant's extra cost there
    (issue 14), and the new pairs then go as one INSERT with the batch's other rows.
    """

    claim_many = Sql(  # as ConsumeCode's: $1, the keys, bounds every plan
        "UPDATE tokens AS t SET rotated_at = v.at, successor = v.successor "
        "FROM unnest($1::text[], $2::float8[], $3::text[]) AS v(digest, at, successor) "
        "WHERE t.digest = ANY($1::text[]) AND t.digest = v.digest AND t.rotated_at IS NULL AND t.revoked_at IS NULL "
        "AND (SELECT f.revoked_at FROM revoked_families AS f WHERE f.family_id = t.family_id) IS NULL "
        "RETURNING t.digest",
        "tokens", "revoked_families",
    )  # fmt: skip
    __slots__ = ("digest", "now", "access", "refresh")

    def __init__(self, digest: str, now: float, access: TokenRecord, refresh: TokenRecord) -> None:
        self.digest, self.now, self.access, self.refresh = digest, now, access, refresh

    @property
    def claim_args(self) -> tuple[str, float, str]:
        return self.digest, self.now, self.refresh.digest

    async def __call__(self, tx: Tx) -> RotatedBefore | None:
        rotated = tx.claimed.get(self)  # the writer rotated the batch's tokens together
        if rotated is None:
            rotated = await tx.execute(ROTATE, self.now, self.refresh.digest, self.digest) == 1
        if rotated:
            spec, rows = token_rows((self.access, self.refresh))
            await tx.insert(spec, *rows)
            return None
        row = await tx.fetchrow(ROTATED_STATE, self.digest)
        if row is None or row["revoked_at"] is not None:
            return RotatedBefore(revoked=True, rotated_at=None, successor=None, successor_live=False)
        successor = await tx.fetchrow(SUCCESSOR_LIVE, row["successor"])
        return RotatedBefore(False, row["rotated_at"], row["successor"], successor is not None)


class AuditRows(InsertsOnly):
    """The audit events of one group commit, identical ones as one row with a count.

    A flood of grants (or of refusals) from one app and address then costs one
    row per commit instead of one per request: measured, the audit row was 9 µs
    of a 55 µs app-token grant before, and every grant is still counted. Events
    join while the operation waits in the queue; once it runs, new events start
    the next one. It keeps its rows, so a replayed batch writes the same again.
    """

    __slots__ = ("ran", "rows")

    def __init__(self, ran: Callable[[AuditRows], None]) -> None:
        self.ran = ran  # told when the batch runs: its owner then opens the next one for new events
        self.rows: dict[tuple[object, ...], list[float]] = {}  # key -> [first at, count]

    def add(self, key: tuple[object, ...], at: float) -> None:
        entry = self.rows.get(key)
        if entry is None:
            self.rows[key] = [at, 1]
        else:
            entry[1] += 1

    async def __call__(self, tx: Tx) -> None:
        self.ran(self)
        rows = [
            (at, event, app_id, xspe, customer_id, ip, detail, int(count))
            for (event, app_id, xspe, customer_id, ip, detail), (at, count) in self.rows.items()
        ]
        await tx.insert(INSERT_AUDIT, *rows)


# A token as issued: not yet revoked, rotated or succeeded, so those three columns are left to their
# default (NULL) too, for the same reason (a user token's row binds three None fewer).
INSERT_ISSUED_TOKEN = InsertSpec("tokens", tuple(
    (name, "float8" if name.endswith("_at") else "text") for name in TOKEN_COLUMNS.split(", ")
    if name not in ("revoked_at", "rotated_at", "successor")
))  # fmt: skip


def token_rows(records: tuple[TokenRecord, ...]) -> tuple[InsertSpec, list[tuple[object, ...]]]:
    """The INSERT for ``records`` and their rows: ``INSERT_ISSUED_TOKEN`` for tokens as issued (the
    hot path's), else every column (``INSERT_TOKEN``)."""
    # One comprehension that keeps the tokens as issued: an all() over a generator first cost about
    # 2,000 instructions more for a pair (callgrind).
    issued: list[tuple[object, ...]] = [
        (t.digest, t.kind, t.app_id, t.installation_id, t.customer_id, t.xspe, t.scope, t.family_id,
         t.created_at, t.expires_at, t.family_expires_at)
        for t in records if t.revoked_at is None and t.rotated_at is None and t.successor is None
    ]  # fmt: skip
    if len(issued) == len(records):
        return INSERT_ISSUED_TOKEN, issued
    return INSERT_TOKEN, [token_params(t) for t in records]


def _only_app_columns(t: TokenRecord) -> bool:
    """Whether every column ``INSERT_APP_TOKEN`` leaves out is NULL for ``t`` (an app token as issued)."""
    return (
        t.installation_id is None and t.customer_id is None and t.xspe is None and t.family_id is None
        and t.revoked_at is None and t.rotated_at is None and t.successor is None and t.family_expires_at is None
    )  # fmt: skip


class SqlStore:
    def __init__(self, driver: Driver, clock: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.clock = clock
        self._audits: AuditRows | None = None  # the audit rows waiting for the next group commit

    async def start(self) -> None:
        await self.driver.start()

    async def close(self) -> None:
        await self.driver.close()

    # ------------------------------------------------------------------ reads

    async def get_app(self, app_id: str, fresh: bool = True) -> App | None:
        row = await self.driver.fetchrow("SELECT * FROM apps WHERE app_id = ?", app_id)
        if row is None:
            return None
        secrets = await self.driver.fetch(
            "SELECT secret_hash, expires_at FROM app_secrets WHERE app_id = ? ORDER BY id DESC", app_id
        )
        return app_from_row(row, secrets)

    async def get_customer(self, customer_id: str) -> Customer | None:
        row = await self.driver.fetchrow("SELECT * FROM customers WHERE customer_id = ?", customer_id)
        return customer_from_row(row) if row else None

    async def active_installations(self, app_id: str, fresh: bool = True) -> Installations:
        rows = await self.driver.fetch(
            f"SELECT {INSTALLATION_COLUMNS} FROM installations WHERE app_id = ? AND uninstalled_at IS NULL",
            app_id,
        )
        return Installations(installation_from_row(r) for r in rows)

    async def installation_for(self, app_id: str, xspe: str, customer_id: str) -> Installation | None:
        rows = await self.driver.fetch(INSTALLATION_FOR, app_id, xspe, customer_id, app_id, xspe)
        return installation_from_row(min(rows, key=lambda r: r["rank"])) if rows else None

    async def get_token(self, digest: str) -> TokenRecord | None:
        row = await self.driver.fetchrow(f"SELECT {TOKEN_READ} FROM tokens WHERE digest = ?", digest)
        return token_from_row(row) if row else None

    async def get_code_backed(self, digest: str) -> tuple[AuthorizationCode, Backing] | None:
        """The code and its ``Backing`` (SPEC §8), in one statement."""
        row = await self.driver.fetchrow(CODE_BACKED, digest)
        if row is None:
            return None
        # By position, as get_token_backed (below): by name it cost 30,400 instructions an exchange,
        # unpacked 15,200 (callgrind; docs/benchmarks.md, "The exchange's and the rotation's own work").
        (digest, app_id, installation_id, customer_id, xspe, redirect_uri, scope, expires_at, code_challenge,
         used_at, app_status, installed, customer_status, spe_exists) = row  # fmt: skip
        code = AuthorizationCode(
            digest, app_id, installation_id, customer_id, xspe, redirect_uri, scope, expires_at, code_challenge, used_at
        )
        return code, backing_of(app_status, installed, customer_status, spe_exists)

    async def get_token_backed(self, digest: str) -> tuple[TokenRecord, Backing] | None:
        """The token and its ``Backing`` (SPEC §8), in one statement."""
        row = await self.driver.fetchrow(TOKEN_BACKED, digest)
        if row is None:
            return None
        # By position, in TOKEN_BACKED's order (TOKEN_COLUMNS, then the four states): sqlite3.Row finds a
        # name by comparing it with each column's in turn, and the four states come last of eighteen.
        # By name it cost 43,900 instructions a rotation, unpacked 18,300 (callgrind; docs/benchmarks.md,
        # "The exchange's and the rotation's own work"). tests/storage/test_contract.py reads one back.
        (digest, kind, app_id, installation_id, customer_id, xspe, scope, family_id, created_at, expires_at,
         revoked_at, rotated_at, successor, family_expires_at, app_status, installed, customer_status,
         spe_exists) = row  # fmt: skip
        record = TokenRecord(
            digest, kind, app_id, scope, expires_at, installation_id, customer_id, xspe, family_id, revoked_at,
            rotated_at, successor, created_at, family_expires_at,
        )  # fmt: skip
        return record, backing_of(app_status, installed, customer_status, spe_exists)

    async def backing(
        self, app_id: str, installation_id: str, customer_id: str | None, xspe: str | None, fresh: bool = True
    ) -> Backing:
        """The state a user token or code stands on (SPEC §8), in one query; always read here."""
        row = await self.driver.fetchrow(BACKING, app_id, installation_id, app_id, customer_id, xspe, xspe)
        return read_backing(row)

    async def invalidations_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, float]]:
        """Up to ``limit`` invalidation records with an id above ``after_id``, in id order:
        (id, kind, key, at), ``at`` in UNIX seconds when the record was written."""
        rows = await self.driver.fetch(
            "SELECT id, kind, key, at FROM invalidations WHERE id > ? ORDER BY id LIMIT ?", after_id, limit
        )
        return [(int(r["id"]), r["kind"], r["key"], float(r["at"])) for r in rows]

    async def last_invalidation_id(self) -> int:
        row = await self.driver.fetchrow("SELECT MAX(id) AS m FROM invalidations")
        return int(row["m"]) if row and row["m"] is not None else 0

    async def ping(self) -> None:
        await self.driver.fetchrow("SELECT 1 AS one")

    # ----------------------------------------------------------------- writes

    async def save_code(self, code: AuthorizationCode) -> None:
        row = (
            code.digest, code.app_id, code.installation_id, code.customer_id, code.xspe,
            code.redirect_uri, code.scope, code.code_challenge, code.expires_at,
        )  # fmt: skip
        await self.driver.write(Insert(INSERT_CODE, row))

    async def save_tokens(self, *records: TokenRecord) -> None:
        if len(records) == 1 and _only_app_columns(t := records[0]):  # the app-token grant
            await self.driver.write(Insert(INSERT_APP_TOKEN, (t.digest, t.kind, t.app_id, t.scope, t.created_at,
                                                              t.expires_at)))  # fmt: skip
            return
        spec, rows = token_rows(records)
        await self.driver.write(Insert(spec, *rows))

    async def consume_code(self, digest: str, *records: TokenRecord) -> bool:
        """Consume the code and store its tokens atomically; False when it was already consumed
        (even by a concurrent call) or has expired."""
        return await self.driver.write(ConsumeCode(digest, self.clock(), records))

    async def rotate_refresh(
        self, old: TokenRecord, new_access: TokenRecord, new_refresh: TokenRecord
    ) -> RotatedBefore | None:
        """Rotate ``old`` into the new pair atomically: None when done, else the state found.

        Exactly one rotation of a token succeeds, however many race for it; the
        others get what the winner left (when, into which successor), from which
        the grant tells a retry from a theft (SPEC §2.3).
        """
        return await self.driver.write(RotateRefresh(old.digest, self.clock(), new_access, new_refresh))

    async def revoke_family(self, family_id: str, ends: float | None) -> None:
        """Revoke every token descended from one code (a replayed code, a reused refresh token):
        one row of ``revoked_families``, kept until ``ends`` (epoch seconds; None: for ever)."""
        now = self.clock()
        await self.driver.write(lambda tx: revoke_family_in(tx, family_id, ends, now))

    async def revoke_token(self, record: TokenRecord) -> None:
        """RFC 7009: an access token alone; a refresh token with its whole family."""
        now = self.clock()

        async def op(tx: Tx) -> None:
            if record.kind == "refresh" and record.family_id:
                await revoke_family_in(tx, record.family_id, record.family_expires_at, now)
                return
            await tx.execute(REVOKE_TOKEN, now, record.digest)
            await tx.insert(INSERT_INVALIDATION, (now, "token", record.digest))

        await self.driver.write(op)

    def audit(
        self,
        event: str,
        app_id: object = None,
        xspe: object = None,
        customer_id: object = None,
        ip: object = None,
        **detail: object,
    ) -> None:
        """Queue an audit event into the next group commit (never awaited). The fields with a column of
        their own come as parameters, so that only the rest (``detail``) makes a dict: every grant
        audits, and picking the columns out of one ``**fields`` dict (``rows.audit_values``) cost a
        code exchange's event about 3,000 instructions more (callgrind; docs/benchmarks.md, "The
        exchange and the rotation, third pass")."""
        key = (event, app_id, xspe, customer_id, ip, audit_detail(detail))
        rows = self._audits
        if rows is None:
            rows = AuditRows(self._audit_batch_ran)
            self.driver.write_later(rows)
            self._audits = rows
        rows.add(key, self.clock())

    def _audit_batch_ran(self, rows: AuditRows) -> None:
        if self._audits is rows:  # from now on, events go to the next batch
            self._audits = None

    async def cleanup(
        self,
        keep_seconds: float = CLEANUP_KEEP_SECONDS,
        audit_retention_seconds: float = AUDIT_RETENTION_SECONDS,
        batch_size: int = CLEANUP_BATCH_SIZE,
        rest: float = 1.0,
    ) -> dict[str, int]:
        """One cleanup pass (SPEC §8), in batches of ``batch_size`` rows that never hold serving up.

        Deletes codes and tokens expired more than ``keep_seconds`` (seconds) ago (and
        the revocations of families whose last token did), invalidation records older
        than that, app secrets past their grace period, and audit events and finished
        webhook deliveries older than ``audit_retention_seconds`` (seconds; a pending
        delivery stays whatever its age); after each batch
        it rests ``rest`` times as long as the batch took. Returns ``{"codes": N,
        "tokens": N, "invalidations": N, "audit_events": N}``. See ``storage.sql.cleanup``.
        """
        now = self.clock()
        return await cleanup_pass(self.driver, now, keep_seconds, audit_retention_seconds, batch_size, rest)
