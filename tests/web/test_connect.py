"""GET /oauth/connect (SPEC §2.1, RFC 6749 §4.1.1–4.1.2.1) over HTTP.

Installation is consent: no screen, a 302 straight back with a code. Until
app_id and redirect_uri are trusted nothing redirects (an open redirector would
leak codes); after that, errors go back to the app as error/error_description/state.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from openplatform.core.pkce import s256
from openplatform.models import Installation
from tests.conftest import Harness, World

VERIFIER = "v" * 43 + "-._~0123456789"
CHALLENGE = s256(VERIFIER)


def redirect_query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)


def assert_error_redirect(response: httpx.Response, world: World, error: str, state: str = "st-123") -> None:
    """RFC 6749 §4.1.2.1: back to the trusted redirect_uri with error, description and state."""
    location = response.headers["location"]
    assert location.startswith(world.redirect_uri + ("&" if "?" in world.redirect_uri else "?")), location
    query = redirect_query(response)
    assert query["error"] == [error], query
    assert query["error_description"][0], query
    assert query["state"] == [state]
    assert "code" not in query
    assert response.headers["cache-control"] == "no-store"


def assert_not_redirected(response: httpx.Response, code: int, error: str) -> None:
    assert "location" not in response.headers
    assert response.status_code == code // 100, response.text
    body = response.json()
    # SPEC §2 envelope; docs/errors.md adds an optional "field" naming the parameter at fault.
    assert isinstance(body.pop("field", ""), str)
    assert body == {"code": code, "msg": body["msg"], "error": error, "result": None}
    assert body["msg"]


# ---------------------------------------------------------------------- success


async def test_success_keeps_the_redirect_uri_query(harness: Harness) -> None:
    world = await harness.world()
    world.redirect_uri = "https://app.example.com/callback?x=1&y=a%20b&empty="
    response = await harness.connect(world)
    location = response.headers["location"]
    assert response.status_code == 302
    assert location.startswith("https://app.example.com/callback?x=1&y=a%20b&empty=&code="), location
    query = redirect_query(response)
    assert query["x"] == ["1"] and query["y"] == ["a b"] and query["empty"] == [""]
    assert query["state"] == ["st-123"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    # The code works, bound to the redirect_uri exactly as given.
    exchanged = await harness.exchange(world, query["code"][0], redirect_uri=world.redirect_uri)
    assert exchanged.status_code == 200, exchanged.text


@pytest.mark.parametrize("own", ["code=stale&state=old&x=1", "co%64e=stale&x=1&error=e&error_description=d"])
async def test_the_redirect_uri_query_never_doubles_what_the_server_adds(harness: Harness, own: str) -> None:
    """A redirect_uri's own ``code``/``state``/``error``/``error_description`` are left out of the
    redirect: the app gets exactly one of each, the server's (its other pairs kept as they are)."""
    world = await harness.world()
    world.redirect_uri = f"https://app.example.com/callback?{own}"
    response = await harness.connect(world)
    query = redirect_query(response)
    assert query["x"] == ["1"] and query["state"] == ["st-123"] and len(query["code"]) == 1, query
    assert query["code"] != ["stale"] and "error" not in query and "error_description" not in query
    exchanged = await harness.exchange(world, query["code"][0], redirect_uri=world.redirect_uri)
    assert exchanged.status_code == 200, exchanged.text
    # an error redirect too: one error, no stale code
    failed = redirect_query(await harness.connect(world, response_type="token"))
    assert failed["error"] == ["unsupported_response_type"] and "code" not in failed, failed


ODD_STATES = [
    "plain", "with  spaces", "ünïcödé 日本語 🚀", "a&b=c&code=forged", "=", "&", "a+b%20c%41",
    "?#/;:@!$'()*,", '"quoted" <tag>', "", "x" * 1024,
]  # fmt: skip


async def test_state_is_echoed_byte_for_byte(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for state in ODD_STATES:
        with subtests.test(state=state):
            query = redirect_query(await harness.connect(world, state=state))
            assert query["state"] == [state]
            assert len(query["code"]) == 1
    with subtests.test("no state"):
        query = redirect_query(await harness.connect(world, state=None))
        assert "state" not in query and len(query["code"]) == 1


async def test_spe_wide_installation_covers_every_customer_of_that_spe(harness: Harness) -> None:
    world = await harness.world(spe_wide=True)
    other = await harness.admin.create_customer(world.xspe, "Customer Two")
    for customer_id in (world.customer_id, other.customer_id):
        query = redirect_query(await harness.connect(world, customer_id=customer_id))
        tokens = (await harness.exchange(world, query["code"][0])).json()["result"]
        assert tokens["scope"] == "install_login"
        seen = await harness.client.get(f"/api/spe/customer/{customer_id}?access_token={tokens['access_token']}")
        assert seen.json()["result"]["customer_id"] == customer_id
    stranger_spe = await harness.admin.create_spe("Other SPE")
    stranger = await harness.admin.create_customer(stranger_spe.xspe, "Stranger")
    response = await harness.connect(world, xspe=stranger_spe.xspe, customer_id=stranger.customer_id)
    assert_error_redirect(response, world, "access_denied")


async def test_a_code_reads_two_installations_however_many_the_app_has(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each GET /oauth/connect read every live installation of the app (``active_installations``):
    1.3 ms a code with 400 customers against 0.13 ms with one (docs/benchmarks.md, "Many
    customers"). It now looks up the customer's own and the SPE-wide one, and takes its own first."""
    world = await harness.world(spe_wide=True)
    others = [(await harness.admin.create_customer(world.xspe, f"Customer {n}")).customer_id for n in range(20)]
    own = {c: (await harness.admin.install(world.app_id, customer_id=c)).installation_id for c in others[:10]}
    inner = harness.platform.store.inner
    listed: list[str] = []
    real = inner.active_installations

    async def listing(app_id: str, fresh: bool = True) -> list[Installation]:
        listed.append(app_id)
        return await real(app_id, fresh)

    monkeypatch.setattr(inner, "active_installations", listing)
    for customer_id in others:
        query = redirect_query(await harness.connect(world, customer_id=customer_id))
        tokens = (await harness.exchange(world, query["code"][0])).json()["result"]
        introspected = await harness.client.post(
            "/oauth/introspect", data={"app_id": world.app_id, "secret": world.secret, "token": tokens["access_token"]}
        )
        assert introspected.json()["active"] is True
        record = await inner.get_token(harness.platform.keyring.token_digest(tokens["access_token"]))
        assert record is not None
        assert record.installation_id == own.get(customer_id, world.installation_id), customer_id
    assert listed == []


ALLOWED_SCOPES = [
    # (requested, granted)
    (None, "install_login"),
    ("install_login", "install_login"),
    ("install_login customer:read", "install_login customer:read"),
    ("customer:read  install_login customer:read", "customer:read install_login"),
]


async def test_allowed_scopes(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world(scopes=("customer:read",))
    for scope, granted in ALLOWED_SCOPES:
        with subtests.test(scope=scope):
            query = redirect_query(await harness.connect(world, scope=scope))
            tokens = (await harness.exchange(world, query["code"][0])).json()["result"]
            assert tokens["scope"] == granted


# --------------------------------------------------- errors that never redirect


NOT_REDIRECTED: list[tuple[dict[str, str | None], int, str]] = [
        ({"app_id": None}, 40001, "invalid_request"),
        ({"app_id": ""}, 40001, "invalid_request"),
        ({"app_id": "0" * 32}, 40101, "invalid_client"),
        ({"app_id": "not-an-app"}, 40101, "invalid_client"),
        ({"redirect_uri": None}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": ""}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "https://evil.com/callback"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "https://app.example.com@evil.com/"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "https://evil.app.example.com/"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "http://app.example.com/callback"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "https://app.example.com/cb#frag"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "https://[::1/"}, 40005, "invalid_redirect_uri"),
        ({"redirect_uri": "/callback"}, 40005, "invalid_redirect_uri"),
        # Even with every other parameter wrong too: nothing is sent to an untrusted URI.
        ({"redirect_uri": "https://evil.com/", "response_type": "token", "scope": "bad"}, 40005,
         "invalid_redirect_uri"),
]  # fmt: skip


async def test_bad_app_or_redirect_uri_is_answered_without_redirect(
    harness: Harness, subtests: pytest.Subtests
) -> None:
    world = await harness.world()
    for overrides, code, error in NOT_REDIRECTED:
        with subtests.test(**overrides):
            response = await harness.connect(world, **overrides)
            assert_not_redirected(response, code, error)
            assert response.headers["cache-control"] == "no-store"


async def test_suspended_app_is_not_redirected(harness: Harness) -> None:
    world = await harness.world()
    await harness.admin.set_status(world.app_id, "suspended")
    await harness.wait_for_invalidation()
    assert_not_redirected(await harness.connect(world), 40101, "invalid_client")
    await harness.admin.set_status(world.app_id, "active")
    await harness.wait_for_invalidation()
    assert (await harness.connect(world)).status_code == 302


HTML_CASES: list[tuple[dict[str, str | None], int, str, str]] = [
    # (overrides, HTTP status, code, error)
    ({"redirect_uri": "https://evil.com/<script>"}, 400, "40005", "invalid_redirect_uri"),
    ({"app_id": "f" * 32}, 401, "40101", "invalid_client"),
]


async def test_html_page_when_the_browser_asks_for_html(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for overrides, status, code, error in HTML_CASES:
        with subtests.test(error):
            response = await harness.client.get(
                "/oauth/connect",
                params=harness.connect_params(world, **overrides),
                headers={"Accept": "text/html,application/xhtml+xml;q=0.9"},
            )
            assert response.status_code == status
            assert "location" not in response.headers
            assert response.headers["content-type"].startswith("text/html")
            assert code in response.text and error in response.text
            assert "<script>" not in response.text
            assert response.headers["cache-control"] == "no-store"


# -------------------------------------------------- errors sent back to the app


REDIRECTED_ERRORS: list[tuple[dict[str, str | None], str]] = [
    ({"response_type": None}, "unsupported_response_type"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code token"}, "unsupported_response_type"),
    ({"response_type": "CODE"}, "unsupported_response_type"),
    ({"scope": "customer:write"}, "invalid_scope"),
    ({"scope": "install_login admin"}, "invalid_scope"),
    ({"scope": "   "}, "invalid_scope"),
    ({"xspe": None}, "invalid_request"),
    ({"xspe": ""}, "invalid_request"),
    ({"customer_id": None}, "invalid_request"),
    ({"customer_id": "cus_unknown"}, "access_denied"),
    ({"xspe": "spe_unknown"}, "access_denied"),
]


async def test_errors_after_redirect_uri_is_trusted_go_back_to_the_app(
    harness: Harness, subtests: pytest.Subtests
) -> None:
    world = await harness.world(scopes=("customer:read",))
    for overrides, error in REDIRECTED_ERRORS:
        with subtests.test(**overrides):
            assert_error_redirect(await harness.connect(world, **overrides), world, error)


async def test_error_redirect_keeps_query_and_echoes_state(harness: Harness) -> None:
    world = await harness.world()
    world.redirect_uri = "https://app.example.com/cb?keep=1"
    state = "ü &=x"
    response = await harness.connect(world, response_type="token", state=state)
    assert response.headers["location"].startswith("https://app.example.com/cb?keep=1&error=")
    assert_error_redirect(response, world, "unsupported_response_type", state)
    query = redirect_query(await harness.connect(world, response_type="token", state=None))
    assert query["error"] == ["unsupported_response_type"] and "state" not in query


async def test_customer_of_another_spe_is_denied(harness: Harness) -> None:
    world = await harness.world()
    other_spe = await harness.admin.create_spe("Other SPE")
    other = await harness.admin.create_customer(other_spe.xspe, "Other Customer")
    await harness.admin.install(world.app_id, customer_id=other.customer_id)
    # Each pairing is installed, but the customer must belong to the xspe given.
    assert_error_redirect(await harness.connect(world, customer_id=other.customer_id), world, "access_denied")
    assert_error_redirect(await harness.connect(world, xspe=other_spe.xspe), world, "access_denied")
    assert (await harness.connect(world, xspe=other_spe.xspe, customer_id=other.customer_id)).status_code == 302


async def test_app_not_installed_is_denied(harness: Harness) -> None:
    world = await harness.world()
    sibling = await harness.admin.create_customer(world.xspe, "Sibling")
    # Installed for one customer only: its sibling in the same SPE is not covered.
    assert_error_redirect(await harness.connect(world, customer_id=sibling.customer_id), world, "access_denied")
    # Another app installed for the customer does not count for this one.
    other_app, _secret = await harness.admin.create_app("Other", "https://app.example.com/")
    await harness.admin.install(other_app.app_id, customer_id=sibling.customer_id)
    assert_error_redirect(await harness.connect(world, customer_id=sibling.customer_id), world, "access_denied")
    await harness.admin.uninstall(world.app_id, customer_id=world.customer_id)
    await harness.wait_for_invalidation()
    assert_error_redirect(await harness.connect(world), world, "access_denied")


# ------------------------------------------------------------------------- PKCE


BAD_PKCE: list[dict[str, str | None]] = [
    {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
    {"code_challenge": CHALLENGE, "code_challenge_method": "s256"},
    {"code_challenge": CHALLENGE},  # RFC 7636 defaults to plain, which is refused
    {"code_challenge_method": "S256"},
    {"code_challenge": CHALLENGE[:-1], "code_challenge_method": "S256"},
    {"code_challenge": CHALLENGE + "A", "code_challenge_method": "S256"},
    {"code_challenge": CHALLENGE[:-1] + "=", "code_challenge_method": "S256"},
    {"code_challenge": CHALLENGE[:-1] + "+", "code_challenge_method": "S256"},
]


async def test_bad_pkce_parameters_go_back_as_invalid_request(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for overrides in BAD_PKCE:
        with subtests.test(**overrides):
            assert_error_redirect(await harness.connect(world, **overrides), world, "invalid_request")


async def test_pkce_s256_challenge_is_accepted(harness: Harness) -> None:
    world = await harness.world()
    query = redirect_query(await harness.connect(world, code_challenge=CHALLENGE, code_challenge_method="S256"))
    exchanged = await harness.exchange(world, query["code"][0], code_verifier=VERIFIER)
    assert exchanged.status_code == 200, exchanged.text


# --------------------------------------------------------------- request shape


MALFORMED = [
    # (parameter, raw value appended to an otherwise good query, why)
    ("app_id", "{app}", "app_id twice"),
    ("state", "a", "state twice"),
    ("state", "%ff%fe", "not UTF-8"),
    ("state", "a%00b", "a control character"),
    ("redirect_uri", "https://app.example.com/" + "x" * 3000, "too long"),
]


async def test_malformed_query_is_refused_without_redirect(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for name, raw_value, why in MALFORMED:
        with subtests.test(why):
            repeated = why.endswith("twice")
            good = str(httpx.QueryParams(harness.connect_params(world, **({} if repeated else {name: None}))))
            response = await harness.client.get(f"/oauth/connect?{good}&{name}={raw_value.format(app=world.app_id)}")
            assert_not_redirected(response, 40001, "invalid_request")
