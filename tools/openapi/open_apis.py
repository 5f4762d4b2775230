"""The customer and site Open APIs (SPEC §2.5, notes/API_SHAPES.md)."""

from __future__ import annotations

from tools.openapi.components import Schema, ref
from tools.openapi.operations import API_ERRORS, OPEN_API, body, operation, params, success

CUSTOMERS = "Open APIs: customers"
SITES = "Open APIs: sites"
SPECP = "Open APIs: customer-side sites"
WRITE_ERRORS = (*API_ERRORS, 409)

REACH = (
    " Objects outside the token's reach (another SPE, another customer) answer 404 / 40401, exactly like "
    "objects that do not exist."
)


def api(op_id: str, tag: str, summary: str, description: str, result: Schema, **extra: object) -> Schema:
    """An Open API operation: bearer token, envelope, ETag on single objects, 409 on updates."""
    is_object = result in (ref("Customer"), ref("Site"))
    errors = WRITE_ERRORS if op_id.endswith("update") else API_ERRORS
    ok = success(result, ("ETag", "Cache-Control") if is_object else ("Cache-Control",))
    return operation(op_id, tag, summary, description + REACH, {"200": ok}, errors, security=OPEN_API, **extra)


CUSTOMER_PATHS: dict[str, Schema] = {
    "/api/spe/customers": {
        "get": api(
            "customers.list",
            CUSTOMERS,
            "List customers",
            "App token with customer:read: the customers of the SPE that installed the app SPE-wide, or only "
            "the customers it is installed for. A user token gets 403 access_denied (it reads its own customer "
            "with GET /api/spe/customer/{customer_id}). "
            "Ordered by creation time, then id.",
            ref("CustomerPage"),
            parameters=params("xspe", "page", "page_size", "customer_status", "name"),
        ),  # fmt: skip
        "post": api(
            "customers.create",
            CUSTOMERS,
            "Create a customer",
            "App token with customer:write, installed for the whole SPE (else 403 access_denied).",
            ref("Customer"),
            requestBody=body("CustomerCreate"),
        ),  # fmt: skip
    },
    "/api/spe/customer/{customer_id}": {
        "parameters": params("customer_id"),
        "get": api(
            "customer.get",
            CUSTOMERS,
            "Get a customer",
            "A user token of that customer (install_login), or an app token with customer:read.",
            ref("Customer"),
        ),  # fmt: skip
        "put": api(
            "customer.update",
            CUSTOMERS,
            "Update a customer",
            "App token with customer:write. Only the fields given change; the version goes up by one. Send "
            "`version` or `If-Match` to be sure nobody changed it since you read it.",
            ref("Customer"),
            requestBody=body("CustomerUpdate"),
            parameters=params("if_match"),
        ),  # fmt: skip
        "delete": api(
            "customer.delete",
            CUSTOMERS,
            "Delete a customer",
            "App token with customer:write. Deletes the customer's sites too, ends the installations made for "
            "that customer alone (apps with a webhook get the uninstall notification), and revokes every code and "
            "token issued for the customer.",
            ref("CustomerDeleted"),
        ),  # fmt: skip
    },
}


def site_paths(base: str, tag: str, prefix: str, who: str, extra: tuple[str, ...]) -> dict[str, Schema]:
    collection: Schema = {
        "get": api(
            f"{prefix}sites.list",
            tag,
            "List sites",
            f"{who} with site:read. Ordered by creation time, then id.",
            ref("SitePage"),
            parameters=params("page", "page_size", "site_status"),
        ),  # fmt: skip
        "post": api(
            f"{prefix}sites.create",
            tag,
            "Create a site",
            f"{who} with site:write.",
            ref("Site"),
            requestBody=body("SiteCreate"),
        ),  # fmt: skip
    }
    item: Schema = {
        "parameters": params(*extra, "site_id"),
        "get": api(f"{prefix}site.get", tag, "Get a site", f"{who} with site:read.", ref("Site")),
        "put": api(
            f"{prefix}site.update",
            tag,
            "Update a site",
            f"{who} with site:write. Only the fields given change; send `version` or `If-Match` to refuse "
            "overwriting someone else's change.",
            ref("Site"),
            requestBody=body("SiteUpdate"),
            parameters=params("if_match"),
        ),  # fmt: skip
        "delete": api(f"{prefix}site.delete", tag, "Delete a site", f"{who} with site:write.", ref("SiteDeleted")),
    }
    if extra:
        collection["parameters"] = params(*extra)
    return {base: collection, base + "/{site_id}": item}


SITE_PATHS: dict[str, Schema] = {
    **site_paths(
        "/api/spe/customer/{customer_id}/sites",
        SITES,
        "",
        "An app token that reaches the customer, or a user token of that customer,",
        ("customer_id",),
    ),  # fmt: skip
    **site_paths(
        "/api/specp/sites",
        SPECP,
        "specp.",
        "A user token (the customer comes from the token; an app token gets 403 access_denied)",
        (),
    ),  # fmt: skip
}
