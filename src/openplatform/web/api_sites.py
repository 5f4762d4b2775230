"""The site Open APIs (SPEC §2.5), SPE-side and customer-side.

``/api/spe/customer/{customer_id}/sites...`` names the customer in the path (app
tokens, or a user token of that customer); ``/api/specp/sites...`` takes the
customer from a user token (the original catalog's ``/specp/`` family). Both
run the same use cases; the customer-side ones pass no customer id.
"""

from __future__ import annotations

from openplatform.web.kernel import Answer, ApiRoute, Call, Handler, ok
from openplatform.web.open_api import access_of, body_fields, directory_of, one, page_of
from openplatform.web.responses import API_NO_STORE

SPE_SITES = "/api/spe/customer/{customer_id}/sites"
SPECP_SITES = "/api/specp/sites"


def customer_in_path(call: Call) -> str | None:
    return call.path_params.get("customer_id")


async def list_sites(call: Call) -> Answer:
    access = await access_of(call)
    page = page_of(call)
    return ok(await directory_of(call.app).list_sites(access, customer_in_path(call), call.query("status"), page))


async def create_site(call: Call) -> Answer:
    access = await access_of(call)
    fields = await body_fields(call)
    return one(await directory_of(call.app).create_site(access, customer_in_path(call), fields))


async def get_site(call: Call) -> Answer:
    access = await access_of(call)
    site_id = call.path_params["site_id"]
    return one(await directory_of(call.app).get_site(access, customer_in_path(call), site_id))


async def update_site(call: Call) -> Answer:
    access = await access_of(call)
    fields, if_match = await body_fields(call), call.header(b"if-match")
    site_id = call.path_params["site_id"]
    directory = directory_of(call.app)
    return one(await directory.update_site(access, customer_in_path(call), site_id, fields, if_match))


async def delete_site(call: Call) -> Answer:
    access = await access_of(call)
    site_id = call.path_params["site_id"]
    return ok(await directory_of(call.app).delete_site(access, customer_in_path(call), site_id))


HANDLERS: tuple[tuple[str, str, str, Handler], ...] = (
    ("", "GET", "list", list_sites),
    ("", "POST", "create", create_site),
    ("/{site_id}", "GET", "get", get_site),
    ("/{site_id}", "PUT", "update", update_site),
    ("/{site_id}", "DELETE", "delete", delete_site),
)


def _routes(base: str, family: str) -> list[ApiRoute]:
    """One route per method; the metrics name says which family and action it was."""
    return [
        ApiRoute(method, base + suffix, handler, f"api.{family}.sites.{action}", API_NO_STORE)
        for suffix, method, action, handler in HANDLERS
    ]


routes = [*_routes(SPE_SITES, "spe"), *_routes(SPECP_SITES, "specp")]
