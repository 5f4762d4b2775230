"""A 405 names every method of the path in ``Allow`` (RFC 9110 §15.5.6; operator review of issue 10).

The route table gives Starlette one route per method and path, and Starlette's 405 listed the
methods of the first route of the path only: ``PATCH /api/manage/customers/{id}`` answered
``Allow: GET, HEAD`` although ``PUT`` and ``DELETE`` are served there, ``DELETE /api/manage/spes``
``Allow: HEAD, GET`` without ``POST``. A client (or an operator reading the answer) was told
methods were not there. For every API path of the table, a method it does not serve now gets
the envelope's ``40501`` with exactly the path's methods (and ``HEAD`` with ``GET``).
"""

from __future__ import annotations

import re
from collections import defaultdict

from openplatform.web.kernel import RouteTable
from tests.conftest import Harness

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


async def test_a_405_names_every_method_of_the_path(harness: Harness) -> None:
    table: RouteTable = harness.app.table
    served: dict[str, set[str]] = defaultdict(set)
    for route in table.routes:
        served[route.path].add(route.method)
    assert served["/api/manage/customers/{customer_id}"] == {"GET", "PUT", "DELETE"}  # the finding's path
    for template, methods in served.items():
        path = re.sub(r"\{\w+\}", "x1", template)
        expected = methods | ({"HEAD"} if "GET" in methods else set())
        for method in sorted(set(METHODS) - methods):
            answer = await harness.client.request(method, path)
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert answer.json()["code"] == 40501, (method, path, answer.text)
            assert len(answer.headers.get_list("allow")) == 1, (method, path, answer.headers)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == expected, (method, template, answer.headers["allow"])
