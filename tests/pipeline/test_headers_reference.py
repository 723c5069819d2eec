"""`upstream_headers`, one pass over the client's headers with the body's content-type folded
in, sends upstream exactly the headers, in the order, that the comprehensions it replaced
(1eb851c, kept below as the reference, with `build_request`'s content-type step) did: whatever
the client sends (credentials, hop-by-hop, `x-forwarded-*`, `proxy-*`, names its `Connection`
lists, repeated names, content-types) and whatever the provider adds (headers of any case, a
content-type among them, each auth scheme, no key)."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomics.config.providers import ProviderConfig
from tokenomics.pipeline.headers import _NOT_FORWARDED, _auth, _connection_listed, upstream_headers
from tokenomics.pipeline.target import Target

Headers = list[tuple[str, str]]


def reference_upstream_headers(client: Headers, target: Target, client_request_id: str) -> Headers:
    fixed = {k.lower(): v for k, v in (target.provider.headers if target.provider else {}).items()}
    auth = _auth(target)
    extra = _connection_listed(client)
    extra.update(fixed)
    if auth is not None:
        extra.add(auth[0])
    out = [
        (name, value)
        for name, value in client
        if name not in _NOT_FORWARDED
        and name not in extra
        and not name.startswith(("x-forwarded-", "proxy-"))
    ]
    out += ([auth] if auth else []) + list(fixed.items())
    out += [("accept-encoding", "identity"), ("x-client-request-id", client_request_id)]
    return out


def reference_with_body(
    client: Headers, target: Target, client_request_id: str, content_type: str | None
) -> Headers:
    """`build_request`'s step: with a body, every content-type out, the request's one last."""
    headers = reference_upstream_headers(client, target, client_request_id)
    if content_type is not None:
        headers = [h for h in headers if h[0] != "content-type"]
        headers.append(("content-type", content_type))
    return headers


NAMES = st.sampled_from(
    [
        *sorted(_NOT_FORWARDED),
        "content-type",
        "x-forwarded-for",
        "x-forwarded-",
        "proxy-foo",
        "proxy",
        "x-custom",
        "x-other",
        "accept",
        "user-agent",
        "x-client-request-id",
        "anthropic-version",
        "x-title",
    ]
) | st.text(alphabet="abcxyz-_", min_size=1, max_size=8)
VALUES = st.text(max_size=12)
CONNECTION = st.lists(
    NAMES | st.sampled_from(["X-Custom", " x-other ", "Content-Type"]), max_size=3
)


@st.composite
def clients(draw: Any) -> Headers:
    pairs = draw(st.lists(st.tuples(NAMES, VALUES), max_size=12))
    for _ in range(draw(st.integers(0, 2))):
        listed = ",".join(draw(CONNECTION))
        pairs.insert(draw(st.integers(0, len(pairs))), ("connection", listed))
    return cast("Headers", pairs)


PROVIDER_HEADER_NAMES = st.sampled_from(
    ["Content-Type", "content-type", "X-Custom", "x-custom", "Anthropic-Version", "Accept"]
) | st.text(alphabet="abXY-", min_size=1, max_size=6)


@st.composite
def targets(draw: Any) -> Target:
    key = draw(st.sampled_from(["", "sk-test", "k"]))
    provider = None
    if draw(st.booleans()):
        provider = ProviderConfig(
            "p",
            auth_header=draw(
                st.sampled_from(["Authorization", "X-Api-Key", "Content-Type", "x-custom"])
            ),
            auth_scheme=draw(st.sampled_from(["bearer", "header", "query", "none"])),
            headers=draw(st.dictionaries(PROVIDER_HEADER_NAMES, VALUES, max_size=4)),
        )
    return Target(cast("Any", None), "p", provider, "http://up", "KEY", key)


@settings(max_examples=1500)
@given(
    clients(),
    targets(),
    st.text(max_size=8),
    st.none() | st.sampled_from(["application/json", "text/plain; charset=utf-8", ""]),
)
def test_upstream_headers_as_before(
    client: Headers, target: Target, request_id: str, content_type: str | None
) -> None:
    expected = reference_with_body(client, target, request_id, content_type)
    assert upstream_headers(client, target, request_id, content_type) == expected
    assert upstream_headers(client, target, request_id, content_type) == expected  # memo warm
    if content_type is None:
        assert upstream_headers(client, target, request_id) == expected
