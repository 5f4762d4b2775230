"""The redirect_uri rule of SPEC §2.1: "must share the same domain with host_url".

Table-driven cases pin the rule; hypothesis then throws hostile URLs at it and
checks the one property that matters: whatever is accepted sends the browser to
the app's own host (parsed the way a browser would: urlsplit's hostname, then
IDNA/UTS #46), on the app's port, with no userinfo and no fragment.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import idna
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from openplatform.core.redirect_uri import RedirectUriError, check_redirect_uri, parse_origin

HOST_URL = "https://app.example.com/"
LOCAL_URL = "http://localhost:8080/"

ACCEPTED = [
    # (host_url, redirect_uri, why)
    (HOST_URL, "https://app.example.com/callback", "same host, a path"),
    (HOST_URL, "https://app.example.com", "no path at all"),
    (HOST_URL, "https://app.example.com/cb?x=1&y=%20&z", "any query"),
    (HOST_URL, "https://app.example.com/%2e%2e/deep/path;p", "any path"),
    (HOST_URL, "https://app.example.com:443/cb", "explicit default port"),
    (HOST_URL, "https://APP.Example.COM/cb", "host case does not matter"),
    (HOST_URL, "HTTPS://app.example.com/cb", "scheme case does not matter"),
    (HOST_URL, "https://ａｐｐ.example.com/cb", "full-width letters map to ASCII (UTS #46), as in browsers"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/cb", "IDNA: U-label app, A-label redirect"),
    ("https://xn--bcher-kva.example/", "https://BÜCHER.example/cb", "IDNA: A-label app, upper-case U-label"),
    ("https://app.example.com:8443/", "https://app.example.com:8443/cb", "the app's own port"),
    (LOCAL_URL, "http://localhost:8080/cb", "plain http on localhost"),
    (LOCAL_URL, "http://LOCALHOST:8080/cb", "localhost, any case"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/cb", "plain http on 127.0.0.1"),
    ("http://[::1]:9000/", "http://[::1]:9000/cb", "plain http on [::1]"),
    ("http://[::1]:9000/", "http://[0:0::1]:9000/cb", "the same IPv6 address, written longer"),
]

REJECTED = [
    (HOST_URL, "https://app.example.com@evil.com/", "userinfo: the real host is evil.com"),
    (HOST_URL, "https://user:pw@app.example.com/", "userinfo even on the right host"),
    (HOST_URL, "https://app.example.com%2f@evil.com/", "encoded slash before @"),
    (HOST_URL, "https://evil.com\\@app.example.com/", "backslash (browsers read it as a slash)"),
    (HOST_URL, "https://app.example.com\\.evil.com/", "backslash in the host"),
    (HOST_URL, "https://app.example.com/cb\\x", "backslash in the path"),
    (HOST_URL, "https://app.example.com/cb#frag", "fragment"),
    (HOST_URL, "https://app.example.com/cb#", "empty fragment"),
    (HOST_URL, "https://app.example.com/c b", "space"),
    (HOST_URL, "https://app.example.com/cb\t", "tab (urlsplit would silently drop it)"),
    (HOST_URL, "https://app.exa\nmple.com/", "newline inside the host"),
    (HOST_URL, "https://app.example.com/\x00", "NUL"),
    (HOST_URL, "https://app.example.com/\x7f", "DEL"),
    (HOST_URL, "https://app.example.com/\x85", "C1 control"),
    (HOST_URL, "https://app.example.com/\u2028", "line separator"),
    (HOST_URL, "https://app.example.com/\u00a0", "no-break space"),
    (HOST_URL, "https://app.example.com/\u3000", "ideographic space"),
    (HOST_URL, " https://app.example.com/", "leading space"),
    (HOST_URL, "https://evil.app.example.com/", "another subdomain"),
    (HOST_URL, "https://example.com/", "the parent domain"),
    (HOST_URL, "https://app.example.com.evil.com/", "the host as a prefix"),
    (HOST_URL, "https://evil.com/app.example.com", "the host in the path"),
    (HOST_URL, "https://evil.com/?app.example.com", "the host in the query"),
    (HOST_URL, "https://app.example.com./", "trailing dot is another host name"),
    (HOST_URL, "https://%61pp.example.com/", "percent-encoded host"),
    (HOST_URL, "https://xn--pp-6kc.example.com/", "homograph (Cyrillic а) in A-label form"),
    (HOST_URL, "https://аpp.example.com/", "homograph (Cyrillic а)"),
    (HOST_URL, "https://app.example.com\u3002evil.com/", "ideographic full stop makes a longer host"),
    (HOST_URL, "https://app.example.com:8443/", "another port"),
    (HOST_URL, "https://app.example.com:0/", "port 0"),
    (HOST_URL, "https://app.example.com:65536/", "port out of range"),
    (HOST_URL, "https://app.example.com:-443/", "negative port"),
    (HOST_URL, "https://app.example.com:+443/", "signed port"),
    (HOST_URL, "https://app.example.com:4a3/", "non-numeric port"),
    (HOST_URL, "https://app.example.com:\u0664\u0664\u0663/", "non-ASCII digits in the port"),
    (HOST_URL, "http://app.example.com/", "plain http off localhost"),
    (HOST_URL, "ftp://app.example.com/", "another scheme"),
    (HOST_URL, "javascript://app.example.com/%0aalert(1)", "javascript scheme"),
    (HOST_URL, "//app.example.com/cb", "scheme-relative"),
    (HOST_URL, "/cb", "relative path"),
    (HOST_URL, "https:app.example.com/cb", "no authority"),
    (HOST_URL, "https:/app.example.com/cb", "one slash"),
    (HOST_URL, "https:///app.example.com/cb", "three slashes"),
    (HOST_URL, "https://", "no host"),
    (HOST_URL, "", "empty"),
    (HOST_URL, "https://[::1]/", "an IP instead of the host"),
    (HOST_URL, "https://[::1/", "unclosed IPv6 bracket"),
    (HOST_URL, "https://app.example.com]/", "stray closing bracket"),
    (HOST_URL, "https://[app.example.com]/", "a name in brackets"),
    (LOCAL_URL, "http://localhost:8081/cb", "localhost, another port"),
    (LOCAL_URL, "http://localhost/cb", "localhost, default port"),
    (LOCAL_URL, "http://127.0.0.1:8080/cb", "another spelling of loopback is another host"),
    (LOCAL_URL, "http://localhost.:8080/cb", "localhost with a trailing dot"),
    ("http://127.0.0.1:9000/", "http://0x7f.0.0.1:9000/cb", "hex IPv4 (browsers read 127.0.0.1)"),
    ("http://127.0.0.1:9000/", "http://2130706433:9000/cb", "decimal IPv4"),
    ("http://127.0.0.1:9000/", "http://127.1:9000/cb", "short IPv4"),
    ("https://straße.de/", "https://strasse.de/", "IDNA 2008: ß is not ss"),
]


@pytest.mark.parametrize(("host_url", "redirect_uri", "why"), ACCEPTED)
def test_accepted(host_url: str, redirect_uri: str, why: str) -> None:
    check_redirect_uri(redirect_uri, host_url)
    assert browser_origin(redirect_uri) == browser_origin(host_url), why


@pytest.mark.parametrize(("host_url", "redirect_uri", "why"), REJECTED)
def test_rejected(host_url: str, redirect_uri: str, why: str) -> None:
    with pytest.raises(RedirectUriError):
        check_redirect_uri(redirect_uri, host_url)


def test_a_bad_host_url_rejects_every_redirect() -> None:
    with pytest.raises(RedirectUriError, match="host_url"):
        check_redirect_uri("https://app.example.com/", "app.example.com")


# -------------------------------------------------------------------- property


def browser_host(hostname: str) -> str:
    """The host a browser connects to: an IP address, or the IDNA A-label name."""
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        return idna.encode(hostname, uts46=True).decode("ascii").lower()


def browser_origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    assert parts.hostname is not None, url
    return scheme, browser_host(parts.hostname), parts.port or {"https": 443, "http": 80}[scheme]


def assert_safe(url: str, host_url: str) -> None:
    """Rejected, or it goes to host_url's host and port, with nothing smuggled in."""
    try:
        check_redirect_uri(url, host_url)
    except RedirectUriError:
        return
    parts = urlsplit(url)
    assert browser_origin(url) == browser_origin(host_url), url
    assert parts.username is None and parts.password is None, url
    assert not parts.fragment and "#" not in url, url
    assert "\\" not in url and not any(ch.isspace() or ord(ch) < 0x20 for ch in url), url
    assert url.lower().startswith(parts.scheme.lower() + "://"), url


SCHEMES = st.sampled_from(["https", "HTTPS", "http", "ftp", "javascript", "data", "", "https:", "hTTps"])
SEPARATORS = st.sampled_from(["://", ":/", ":///", "//", ":", ":\\\\", "://\\", ":/\\/"])
USERINFO = st.sampled_from(
    ["", "user@", "user:pw@", "app.example.com@", "app.example.com:443@", "@", "app.example.com%40", "a@b@"]
)
HOSTS = st.sampled_from(
    [
        "app.example.com", "APP.EXAMPLE.COM", "App.Example.Com", "app.example.com.", "evil.com",
        "app.example.com.evil.com", "evil.app.example.com", "example.com", "xn--pp-6kc.example.com",
        "аpp.example.com", "ａｐｐ.example.com", "app。example。com", "app.example.com\u3002evil.com",
        "%61pp.example.com", "app%2eexample.com", "app.example.com%00", "app.example.com\x00.evil.com",
        "localhost", "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0x7f.0.0.1", "2130706433", "[app.example.com]",
        "app.example.com\\evil.com", "app.example.com\t", "app .example.com", "", "[", "]", "[::1", "xn--",
        "app.example.com:443", "app..example.com", "\u0430pp.example.com", "app.exam\u200bple.com",
    ]
)  # fmt: skip
PORTS = st.sampled_from(["", ":443", ":0443", ":8443", ":80", ":", ":0", ":65536", ":-1", ":+443", ":44 3", ":x"])
TAILS = st.text(alphabet="/?#@\\:.%&=;+ \t\n\r\x00aZ9é\u2028\u00a0[]", max_size=12)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    return (
        draw(SCHEMES) + draw(SEPARATORS) + draw(USERINFO) + draw(HOSTS) + draw(PORTS)
        + draw(st.sampled_from(["", "/", "/callback"])) + draw(TAILS)
    )  # fmt: skip


PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(url=hostile_urls(), host_url=st.sampled_from([HOST_URL, "https://app.example.com:8443/", LOCAL_URL]))
@example(url="https://app.example.com@evil.com/", host_url=HOST_URL)
@example(url="https://[::1/", host_url=HOST_URL)
def test_accepted_urls_always_reach_the_apps_host(url: str, host_url: str) -> None:
    assert_safe(url, host_url)


@PROPERTY_SETTINGS
@given(url=st.text(max_size=60), prefix=st.sampled_from(["", "https://", "https://app.example.com", "http://["]))
def test_arbitrary_text_is_rejected_cleanly_or_safe(url: str, prefix: str) -> None:
    """Only RedirectUriError may escape: anything else would be a 500 on /oauth/connect."""
    assert_safe(prefix + url, HOST_URL)


@PROPERTY_SETTINGS
@given(url=st.text(max_size=60))
def test_parse_origin_raises_only_redirect_uri_error(url: str) -> None:
    try:
        parse_origin("https://" + url)
    except RedirectUriError:
        pass
