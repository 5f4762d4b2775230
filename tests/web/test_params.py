"""Bad input is a clear 4xx envelope, never a 500 or a stack trace (issue 2 item 7).

RFC 6749 §3.1/§3.2: parameters are form-encoded (here also JSON or query) and
must not repeat; bodies and values are bounded; encodings are strict.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from openplatform.core.requests import MAX_JSON_DEPTH, json_object
from openplatform.errors import OAuthError
from tests.conftest import Harness, World

TOKEN_PATHS = ["/oauth/access_token", "/oauth/refresh_token", "/oauth/credit/token", "/oauth/introspect",
               "/oauth/revoke"]  # fmt: skip
FORM = "application/x-www-form-urlencoded"


def assert_envelope(response: httpx.Response, code: int | None = None) -> None:
    """A 4xx envelope (with ``code`` when given) and nothing that looks like a trace."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert {"code", "msg", "error", "result"} <= set(body) <= {"code", "msg", "error", "result", "field"}
    assert body["result"] is None and body["code"] // 100 == response.status_code
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text and 'File "' not in response.text


def credit_body(world: World) -> str:
    return f"app_id={world.app_id}&secret={world.secret}&grant_type=client_credential"


async def post(harness: Harness, content: bytes | str, content_type: str = FORM, query: str = "") -> httpx.Response:
    return await harness.client.post(
        "/oauth/credit/token" + query, content=content, headers={"Content-Type": content_type}
    )


async def test_oversized_body(harness: Harness) -> None:
    world = await harness.world()
    limit = harness.platform.settings.max_body_bytes
    padding = "&pad=" + "x" * limit
    assert_envelope(await post(harness, credit_body(world) + padding), 40001)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield credit_body(world).encode()
        for _ in range(limit // 1024 + 2):
            yield b"&p=" + b"x" * 1021

    streamed = await harness.client.post("/oauth/credit/token", content=chunks(), headers={"Content-Type": FORM})
    assert "content-length" not in streamed.request.headers
    assert_envelope(streamed, 40001)
    # Just under the limit is read (and then judged on its parameters).
    assert (await post(harness, credit_body(world))).status_code == 200


BAD_FORMS = [
    # (body appended to a good credit-token body, why)
    ("&name=%ff%fe", "not UTF-8 after percent-decoding"),
    ("&name=a%00b", "NUL"),
    ("&name=a%0d%0ab", "CR LF"),
    ("&name=%1b[31m", "ESC"),
    ("&grant_type=client_credential", "a repeated parameter"),
    ("&state=" + "x" * 1025, "over-long state"),
    ("&scope=" + "x" * 513, "over-long value"),
    ("&" + "n" * 65 + "=1", "over-long name"),
    ("&=value", "an empty name"),
    ("".join(f"&p{i}=1" for i in range(40)), "too many parameters"),
]


async def test_bad_form_bodies(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for extra, why in BAD_FORMS:
        with subtests.test(why):
            body = credit_body(world).encode() + extra.encode()
            assert_envelope(await post(harness, body), 40001)
    with subtests.test("raw non-UTF-8 bytes"):
        assert_envelope(await post(harness, credit_body(world).encode() + b"&name=\xff\xfe"), 40001)
    with subtests.test("non-UTF-8 query string"):
        response = await harness.client.post(f"/oauth/credit/token?{credit_body(world)}&x=%C0%AF")
        assert_envelope(response, 40001)


async def test_odd_percent_encoding_is_a_4xx(harness: Harness, subtests: pytest.Subtests) -> None:
    """Invalid escapes are kept literally (WHATWG/urllib); they never crash the parser."""
    world = await harness.world()
    for body in ("app_id=%zz&secret=%&grant_type=client_credential", "%%%=%%%", "a=%G1&b=%1", "&&&==&=",
                 f"app_id={world.app_id}&secret={world.secret}&grant_type=%E2%82"):  # fmt: skip
        with subtests.test(body):
            assert_envelope(await post(harness, body))


BAD_JSON = [
    (b"[1, 2]", "an array"),
    (b'"app_id"', "a string"),
    (b"null", "null"),
    (b"{", "truncated"),
    (b'{"app_id": "a", "app_id": "b"}', "a repeated key"),
    (b'{"secret": {"x": 1}}', "an object value"),
    (b'{"secret": ["a"]}', "an array value"),
    (b'{"secret": 1.5}', "a float value"),
    (b'{"secret": true}', "a boolean value"),
    (b'{"secret": null}', "a null value"),
    (b'{"secret": 1e999}', "an infinite number"),
    (b'{"secret": "\\ud800"}', "a lone surrogate escape"),
    (b'{"secret": "a\\u0000b"}', "an escaped NUL"),
    (b'{"secret": "\xff"}', "raw non-UTF-8"),
    (b"\xef\xbb\xbf{}", "a byte-order mark"),
]


async def test_bad_json_bodies(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for body, why in BAD_JSON:
        with subtests.test(why):
            assert_envelope(await post(harness, body, "application/json"), 40001)
    good = f'{{"app_id": "{world.app_id}", "secret": "{world.secret}", "grant_type": "client_credential"}}'
    assert (await post(harness, good, "application/json; charset=utf-8")).status_code == 200
    # A repeated name is refused even where its last value would pass (orjson keeps the last one).
    repeated = good.replace('"secret"', '"secret": "wrong", "secret"')
    answer = await post(harness, repeated, "application/json")
    assert_envelope(answer, 40001)
    assert "secret field twice" in answer.json()["msg"]


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1, "a": 1}', b'{"a": {"b": 1, "b": 2}}', b'{"a": [{"b": 1}, {"b": 2, "c": 3, "b": 4}]}'],
)
def test_a_json_object_naming_a_field_twice_is_refused(body: bytes) -> None:
    with pytest.raises(OAuthError) as refused:
        json_object(body)
    assert refused.value.error == "invalid_request" and "twice" in refused.value.message


def test_json_objects_without_repeats_read_as_orjson_reads_them() -> None:
    body = b'{"a": {"b": 1, "c": [{"b": 2}, {"b": 3}]}, "b": "\\u00e9", "c": 12345678901234567890}'
    assert json_object(body) == orjson.loads(body)
    deep = b'{"a": ' * 1020 + b"1" + b"}" * 1020  # within orjson's depth (1,024), past the interpreter's
    orjson.loads(deep)
    with pytest.raises(OAuthError, match="nested too deeply"):
        json_object(deep)


def test_json_nests_at_most_max_json_depth_levels() -> None:
    """A fixed bound, whatever the caller's own stack depth (it was the interpreter's recursion limit)."""
    for levels, refused in ((MAX_JSON_DEPTH, False), (MAX_JSON_DEPTH + 1, True)):
        objects = b'{"a": ' * levels + b"1" + b"}" * levels
        arrays = b'{"a": ' + b"[" * (levels - 1) + b"1" + b"]" * (levels - 1) + b"}"
        for body in (objects, arrays):
            if refused:
                with pytest.raises(OAuthError, match=f"more than {MAX_JSON_DEPTH} levels"):
                    json_object(body)
            else:
                assert json_object(body) == orjson.loads(body)


UNKNOWN_TYPES = ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/octet-stream", "json"]


async def test_unknown_content_type(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for content_type in UNKNOWN_TYPES:
        with subtests.test(content_type):
            assert_envelope(await post(harness, credit_body(world), content_type), 40001)


async def test_nul_and_controls_in_path_and_bearer(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world(scopes=("customer:read", "site:read"))
    auth = {"Authorization": f"Bearer {await harness.app_token(world)}"}
    for path in ("/api/spe/customer/abc%00def", "/api/spe/customer/%0d%0a", f"/api/spe/customer/{world.customer_id}%00",
                 f"/api/spe/customer/{world.customer_id}/sites/%00"):  # fmt: skip
        with subtests.test(path):
            assert_envelope(await harness.client.get(path, headers=auth), 40001)
    for token in ("%00", "a%00b", "%ff", "x" * 600):
        with subtests.test(token=token):
            response = await harness.client.get(f"/api/spe/customer/{world.customer_id}?access_token={token}")
            assert_envelope(response)
            assert response.json()["code"] in (40001, 40102)


def assert_405(response: httpx.Response) -> None:
    assert response.status_code == 405, response.text
    body = response.json()
    assert body == {"code": 40501, "msg": body["msg"], "error": "method_not_allowed", "result": None}


async def test_get_on_post_endpoints_is_405(harness: Harness, subtests: pytest.Subtests) -> None:
    for path in TOKEN_PATHS:
        with subtests.test(path):
            assert_405(await harness.client.get(path, params={"grant_type": "client_credential"}))


async def test_other_methods_and_unknown_paths(harness: Harness, subtests: pytest.Subtests) -> None:
    for method, path, status, code in [
        ("POST", "/oauth/connect", 405, 40501),
        ("DELETE", "/oauth/credit/token", 405, 40501),
        ("GET", "/oauth/unknown", 404, 40401),
        ("POST", "/oauth/access_token/extra", 404, 40401),
        ("GET", "/nope%00", 404, 40401),
        ("GET", "/" + "a" * 5000, 404, 40401),
    ]:
        with subtests.test(method=method, path=path[:40]):
            response = await harness.client.request(method, path)
            assert response.status_code == status, response.text
            body = response.json()
            assert (body["code"], body["result"]) == (code, None) and body["msg"] and body["error"]


async def test_malformed_authorization_headers(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for header in ("Basic", "Basic !!!", "Basic " + "YWJj", "Basic /w==", "Basic " + "QQ==" * 400):
        with subtests.test(header=header[:20]):
            response = await harness.client.post(
                "/oauth/credit/token", data={"grant_type": "client_credential"}, headers={"Authorization": header}
            )
            assert_envelope(response)
    assert (await harness.client.post("/oauth/credit/token", content=credit_body(world),
                                      headers={"Content-Type": FORM})).status_code == 200  # fmt: skip


async def test_random_bodies_never_500(harness: Harness) -> None:
    """A small seeded fuzz over every token endpoint: any bytes, any of the accepted types."""
    world = await harness.world()
    rng = random.Random(20240601)
    alphabet = b'=&%+;{}[]":,\\0aZ\x00\xff\xc3\xa9 \n' + world.app_id.encode()
    for round_ in range(120):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        content_type = rng.choice([FORM, "application/json", "", "text/plain"])
        path = rng.choice(TOKEN_PATHS)
        response = await harness.client.post(path, content=body, headers={"Content-Type": content_type})
        assert response.status_code < 500, (round_, path, body, response.text)
        assert_envelope(response)
