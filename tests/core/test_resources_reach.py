"""What an Open API token may reach (core/resources.py): ``can_see`` and the scope checks answer as
the reach sets and the token's scope set define them, for every kind of token and installation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from openplatform.core.resources import Access, effective_scope, granted
from openplatform.errors import OAuthError
from openplatform.models import App, Customer, Installation, Installations, TokenRecord

INSTALLS = [
    Installation("i1", "app", "spe_a", None, 0.0),  # SPE-wide
    Installation("i2", "app", "spe_b", "cus_b1", 0.0),  # one customer
    Installation("i3", "app", "spe_c", "cus_c1", 0.0),
]
CUSTOMERS = [Customer(cid, xspe, "n") for cid in ("cus_a1", "cus_b1", "cus_b2", "cus_c1", "") for xspe in
             ("spe_a", "spe_b", "spe_c", "spe_z")]  # fmt: skip
TOKENS = [
    TokenRecord("d1", "access", "app", "customer:read", 9e9),  # an app token
    TokenRecord("d2", "access", "app", "install_login", 9e9, "i2", "cus_b1", "spe_b"),  # a user token
    TokenRecord("d3", "access", "app", "install_login customer:read", 9e9, "i2", None, "spe_b"),  # no customer
    TokenRecord("d4", "access", "app", "install_login", 9e9, "i2", "", "spe_b"),  # an empty customer
]
APP = App("app", "App", "https://app.example", "active", ("customer:read",), ())


def reference_can_see(access: Access, customer: Customer) -> bool:
    """The definition: the SPE in the SPE-wide reach or the customer in the one-by-one reach."""
    return customer.xspe in reference_spe_reach(access) or customer.customer_id in reference_customer_reach(access)


def reference_spe_reach(access: Access) -> set[str]:
    """The SPEs of an app token's SPE-wide installations."""
    if not access.is_app_token:
        return set()
    return {i.xspe for i in access.installations if i.customer_id is None}


def reference_customer_reach(access: Access) -> set[str]:
    """A user token's own customer; an app token's one-customer installations' customers."""
    if not access.is_app_token:
        return {access.token.customer_id} if access.token.customer_id else set()
    return {i.customer_id for i in access.installations if i.customer_id is not None}


@pytest.mark.parametrize("token", TOKENS, ids=lambda t: t.digest)
def test_can_see_is_the_reach_sets(token: TokenRecord) -> None:
    for count in range(len(INSTALLS) + 1):
        for installs in itertools.permutations(INSTALLS, count):
            access = Access(token, APP, Installations(installs))
            assert access.spe_reach() == reference_spe_reach(access), installs
            for customer in CUSTOMERS:
                assert access.can_see(customer) is reference_can_see(access, customer), (installs, customer)


@pytest.mark.parametrize(
    ("scope", "token_scope", "app_scopes", "expected"),
    [
        ("customer:read", "customer:read", ("customer:read",), True),
        ("customer:read", "customer:read", (), False),  # withdrawn from the app
        ("customer:read", "customer:readx customer:write", ("customer:read",), False),  # whole words only
        ("customer:read", "  customer:read\tinstall_login ", ("customer:read",), True),  # any whitespace
        ("install_login", "install_login", (), True),  # implied by the installation
        ("install_login", "customer:read", (), False),
    ],
)  # fmt: skip
def test_granted_is_the_token_scope_set(
    scope: str, token_scope: str, app_scopes: tuple[str, ...], expected: bool
) -> None:
    token = TokenRecord("d", "access", "app", token_scope, 9e9)
    app = App("app", "App", "https://app.example", "active", app_scopes, ())
    assert granted(token, app, scope) is expected
    assert (scope in token.scopes and (scope == "install_login" or scope in app.scopes)) is expected


def test_a_user_token_reads_its_own_customer_by_install_login_alone() -> None:
    own = Customer("cus_b1", "spe_b", "n")
    Access(TOKENS[1], APP, Installations(INSTALLS)).require_read(own, "customer:read")  # no customer:read needed
    with pytest.raises(OAuthError) as refused:
        Access(TOKENS[0], App("app", "App", "h", "active", (), ()), Installations(INSTALLS)).require_read(
            Customer("cus_a1", "spe_a", "n"), "customer:read"
        )
    assert refused.value.error == "insufficient_scope"


@pytest.mark.parametrize(
    "token_scope",
    ["", "customer:read", "install_login customer:read", "customer:write customer:read install_login",
     "  customer:read\tsite:read ", "site:read site:read customer:write"],
)  # fmt: skip
@pytest.mark.parametrize("app_scopes", [(), ("customer:read",), ("customer:read", "site:read", "customer:write")])
def test_effective_scope_is_the_granted_scopes_in_order(token_scope: str, app_scopes: tuple[str, ...]) -> None:
    token = TokenRecord("d", "access", "app", token_scope, 9e9)
    app = App("app", "App", "https://app.example", "active", app_scopes, ())
    expected = " ".join(scope for scope in token_scope.split() if granted(token, app, scope))
    assert effective_scope(token, app) == expected


def test_require_read_walks_the_reach_again_only_for_another_customer(monkeypatch: pytest.MonkeyPatch) -> None:
    access = Access(TOKENS[0], APP, Installations([INSTALLS[1]]))  # an app token reaching cus_b1 alone
    walks: list[str] = []
    can_see = Access.can_see

    def counted(self: Access, customer: Customer) -> bool:
        walks.append(customer.customer_id)
        return can_see(self, customer)

    monkeypatch.setattr(Access, "can_see", counted)
    visible = access.require_visible(Customer("cus_b1", "spe_b", "n"))
    access.require_read(visible, "customer:read")  # the object just let through: not walked again
    assert walks == ["cus_b1"]
    access.require_read(Customer("cus_b1", "spe_b", "n"), "customer:read")  # an equal object: walked
    assert walks == ["cus_b1", "cus_b1"]
    with pytest.raises(OAuthError) as hidden:
        access.require_read(Customer("cus_a1", "spe_a", "n"), "customer:read")  # another customer: refused
    assert hidden.value.error == "not_found" and walks[-1] == "cus_a1"


class CountedInstallations(Installations):
    """The installations, counting how many of them are walked over."""

    walked = 0

    def __iter__(self) -> Iterator[Installation]:
        for installation in super().__iter__():
            CountedInstallations.walked += 1
            yield installation


def test_the_reach_questions_walk_no_installation() -> None:
    """An app installed for many customers one by one: every question an Open API call asks of its
    reach (``can_see`` twice a GET, ``spe_reach`` for each list or create, ``xspes``) is answered
    from the sets built once when the installations were read, walking none of them. ``can_see``
    walked them, all 2,000 for a customer reached through the last one, on every call; before that
    ``spe_reach`` asked ``can_see`` for each (2.6 s for 10,000 installations)."""
    installs = [Installation(f"i{n}", "app", "spe_b", f"cus_{n}", 0.0) for n in range(2000)]
    installs.append(Installation("iw", "app", "spe_a", None, 0.0))
    access = Access(TOKENS[0], APP, CountedInstallations(installs))
    CountedInstallations.walked = 0
    assert access.spe_reach() == {"spe_a"}
    assert access.can_see(Customer("cus_1999", "spe_b", "n"))
    assert access.can_see(Customer("cus_new", "spe_a", "n"))  # by the SPE-wide installation
    assert not access.can_see(Customer("cus_new", "spe_b", "n"))
    assert access.xspes() == ["spe_a", "spe_b"]
    assert CountedInstallations.walked == 0
