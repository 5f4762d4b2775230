"""The site Open APIs (SPEC §2.5), SPE-side and customer-side.

``/api/spe/customer/{customer_id}/sites...`` names the customer in the path (app
tokens, or a user token of that customer); ``/api/specp/sites...`` takes the
customer from a user token (the original catalog's ``/specp/`` family). Both
run the same use cases; the customer-side ones pass no customer id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openplatform.web.http import endpoint
from openplatform.web.open_api import access_of, body_fields, directory_of, one, page_of, query_value
from openplatform.web.responses import API_NO_STORE, success

SPE_SITES = "/api/spe/customer/{customer_id}/sites"
SPECP_SITES = "/api/specp/sites"


def customer_in_path(request: Request) -> str | None:
    return request.path_params.get("customer_id")


async def list_sites(request: Request) -> Response:
    access = await access_of(request)
    page = page_of(request)
    result = await directory_of(request.app).list_sites(
        access, customer_in_path(request), query_value(request, "status"), page
    )
    return success(result)


async def create_site(request: Request) -> Response:
    access = await access_of(request)
    fields = await body_fields(request)
    return one(await directory_of(request.app).create_site(access, customer_in_path(request), fields))


async def get_site(request: Request) -> Response:
    access = await access_of(request)
    site_id = request.path_params["site_id"]
    return one(await directory_of(request.app).get_site(access, customer_in_path(request), site_id))


async def update_site(request: Request) -> Response:
    access = await access_of(request)
    fields, if_match = await body_fields(request), request.headers.get("if-match")
    site_id = request.path_params["site_id"]
    directory = directory_of(request.app)
    return one(await directory.update_site(access, customer_in_path(request), site_id, fields, if_match))


async def delete_site(request: Request) -> Response:
    access = await access_of(request)
    site_id = request.path_params["site_id"]
    return success(await directory_of(request.app).delete_site(access, customer_in_path(request), site_id))


HANDLERS = (
    ("", "GET", "list", list_sites),
    ("", "POST", "create", create_site),
    ("/{site_id}", "GET", "get", get_site),
    ("/{site_id}", "PUT", "update", update_site),
    ("/{site_id}", "DELETE", "delete", delete_site),
)


def _routes(base: str, family: str) -> list[Route]:
    """One route per method; the metrics name says which family and action it was."""
    found = []
    for suffix, method, action, handler in HANDLERS:
        name = f"api.{family}.sites.{action}"
        found.append(Route(base + suffix, endpoint(name, API_NO_STORE)(handler), methods=[method], name=name))
    return found


routes = [*_routes(SPE_SITES, "spe"), *_routes(SPECP_SITES, "specp")]
