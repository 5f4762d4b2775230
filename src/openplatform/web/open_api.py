"""The read Open APIs (SPEC §2.5): customers, seen through an access token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openplatform.core.resources import Access, authenticate_bearer, bearer_from
from openplatform.errors import OAuthError
from openplatform.models import Customer
from openplatform.web.http import caller_ip, endpoint, platform_of
from openplatform.web.responses import success

MAX_PAGE_SIZE = 100


async def access_of(request: Request) -> Access:
    platform = platform_of(request)
    query_token = request.query_params.getlist("access_token")
    if len(query_token) > 1:
        raise OAuthError("invalid_request", "The access_token parameter is repeated.")
    raw = bearer_from(request.headers.get("authorization"), query_token[0] if query_token else None)
    return await authenticate_bearer(platform, raw, caller_ip(request, platform))


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) > 1 or not values[0].isascii() or not values[0].isdigit() or len(values[0]) > 9:
        raise OAuthError("invalid_request", f"{name} must be a whole number.", field=name)
    value = int(values[0])
    if not low <= value <= high:
        raise OAuthError("invalid_request", f"{name} must be between {low} and {high}.", field=name)
    return value


@endpoint("api.customer.get")
async def get_customer(request: Request) -> Response:
    access = await access_of(request)
    customer = await platform_of(request).store.get_customer(request.path_params["customer_id"])
    if customer is None:
        raise OAuthError("not_found", "No such customer.")
    access.require_read(customer, "customer:read")
    return success(customer.public())


def pick_xspe(request: Request, access: Access) -> str | None:
    reach = access.xspes()
    wanted = request.query_params.get("xspe")
    if wanted is None:
        if len(reach) > 1:
            raise OAuthError("invalid_request", "The app is installed at several SPEs; pass xspe.", field="xspe")
        return reach[0] if reach else None
    if wanted not in reach:
        raise OAuthError("access_denied", "The app is not installed at that SPE.")
    return wanted


async def customers_in(request: Request, access: Access, xspe: str, page: int, size: int) -> tuple[list[Customer], int]:
    store = platform_of(request).store
    if xspe in access.spe_reach():
        return await store.list_customers(xspe, size, (page - 1) * size)
    found = [await store.get_customer(cid) for cid in sorted(access.customer_reach())]
    mine = [c for c in found if c is not None and c.xspe == xspe]
    return mine[(page - 1) * size : page * size], len(mine)


@endpoint("api.customers.list")
async def list_customers(request: Request) -> Response:
    access = await access_of(request)
    access.require_scope("customer:read")
    page = int_param(request, "page", 1, 1, 1_000_000)
    size = int_param(request, "page_size", 20, 1, MAX_PAGE_SIZE)
    xspe = pick_xspe(request, access)
    items, total = await customers_in(request, access, xspe, page, size) if xspe else ([], 0)
    return success(
        {"items": [c.public() for c in items], "total": total, "page": page, "page_size": size, "xspe": xspe}
    )


routes = [
    Route("/api/spe/customer/{customer_id}", get_customer, methods=["GET"], name="api.customer.get"),
    Route("/api/spe/customers", list_customers, methods=["GET"], name="api.customers.list"),
]
