"""What the Open APIs answer for a cached customer (web/open_api.py ``one_cached``) and the kernel's
Content-Length.

Both reuse what they made before (the encoded answer of the same object, the header pair of the same
size): the bytes must stay those made fresh, a changed object must never get an old answer, and
neither store may grow without bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from openplatform.models import Customer
from openplatform.storage.cache import BoundedCache
from openplatform.web import kernel, open_api
from tests.conftest import Harness
from tests.web.open_api_support import call


def fresh(obj: Customer) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps({"code": 0, "msg": "success", "result": obj.public()})
    return 200, body, [(b"content-type", b"application/json"), (b"etag", b'"%d"' % obj.version)]


def test_an_objects_answer_is_the_fresh_encoding_and_follows_a_change() -> None:
    customer = Customer("cus_1", "spe_1", "Name", "c@example.com", "active", 1.5, 2.5, 3)
    assert open_api.one_cached(customer) == fresh(customer)
    assert open_api.one_cached(customer) is open_api.one_cached(customer)  # the same object: the same answer
    changed = dataclasses.replace(customer, name="Other", version=4)  # what the cache holds after a change
    assert open_api.one_cached(changed) == fresh(changed) != fresh(customer)
    equal = dataclasses.replace(customer)  # equal fields, another object: encoded again, the same bytes
    assert open_api.one_cached(equal) == fresh(customer)


def test_the_answer_memo_is_bounded() -> None:
    customers = [Customer(f"cus_{n}", "spe_1", "Name", version=n + 1) for n in range(open_api.ANSWER_MEMO_SIZE + 10)]
    for customer in customers:
        assert open_api.one_cached(customer) == fresh(customer)
    assert len(open_api._ANSWERED) <= open_api.ANSWER_MEMO_SIZE


async def test_the_get_answers_a_change_at_once(harness: Harness) -> None:
    """The cached customer answered twice (the second from the memo), then changed: the new body and ETag."""
    world = await harness.world(spe_wide=True)
    token = await harness.app_token(world)
    path = f"/api/spe/customer/{world.customer_id}"
    first, again = await call(harness, "GET", path, token), await call(harness, "GET", path, token)
    assert first.content == again.content and first.headers["etag"] == again.headers["etag"]
    version = orjson.loads(first.content)["result"]["version"]
    changed = await call(harness, "PUT", path, token, json={"name": "Renamed"})
    after = await call(harness, "GET", path, token)
    assert after.content == changed.content and orjson.loads(after.content)["result"]["name"] == "Renamed"
    assert after.headers["etag"] == f'"{version + 1}"' != first.headers["etag"]
    assert int(after.headers["content-length"]) == len(after.content)


async def test_content_length_is_right_once_the_sizes_kept_are_full(harness: Harness, monkeypatch: Any) -> None:
    full = BoundedCache(4096)
    for n in range(100_000, 100_000 + 4096):
        full.put(n, (b"content-length", b"%d" % n))
    monkeypatch.setattr(kernel, "_LENGTHS", full)
    world = await harness.world(spe_wide=True)
    token = await harness.app_token(world)
    answer = await call(harness, "GET", f"/api/spe/customer/{world.customer_id}", token)
    assert answer.status_code == 200 and int(answer.headers["content-length"]) == len(answer.content)
    assert len(full) == 4096  # not grown: the oldest size made room
