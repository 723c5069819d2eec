"""`from_exchange`: the headers a record keeps (credentials never, names lower-cased, header
names remembered between requests) and the content types read from them."""

from __future__ import annotations

from tokenomics.domain.usage import Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Reply, Settled
from tokenomics.services import finished as finished_module
from tokenomics.services.finished import from_exchange

REQUEST = [
    ("host", "proxy"),
    ("authorization", "Bearer secret-token"),
    ("content-type", "application/json"),
    ("x-api-key", "secret-key"),
    ("content-type", "text/plain"),
    ("user-agent", "sdk/1.0"),
]
REPLY = [
    ("Content-Type", "application/json; charset=utf-8"),
    ("X-Request-Id", "r1"),
    ("Set-Cookie", "session=secret"),
    ("Api-Key", "secret"),
]


def _exchange(request: list[tuple[str, str]], reply: list[tuple[str, str]]) -> Exchange:
    incoming = Incoming(
        "POST", request, dict(request), "peer", 0.0, "2026-01-01T00:00:00.000Z", "r"
    )
    ex = Exchange(incoming, "/v1/chat/completions", "")
    ex.status, ex.reply = 200, Reply(200, reply, b"{}")
    ex.settle(Settled(Usage(1, 1), None, None))
    return ex


def test_credentials_never_enter_a_record_and_names_are_lower_case() -> None:
    for _ in range(2):  # the second time from the remembered names
        record = from_exchange(_exchange(REQUEST, REPLY), 5)
        assert record.request_headers == (
            ("host", "proxy"),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
            ("user-agent", "sdk/1.0"),
        )
        assert record.response_headers == (
            ("content-type", "application/json; charset=utf-8"),
            ("x-request-id", "r1"),
        )
        assert record.request_content_type == "application/json"  # the first one
        assert record.response_content_type == "application/json; charset=utf-8"
        assert "secret" not in repr((record.request_headers, record.response_headers))


def test_a_record_without_content_type_or_reply_has_none() -> None:
    ex = _exchange([("accept", "*/*")], [])
    ex.reply = None
    record = from_exchange(ex, 5)
    assert (record.request_content_type, record.response_headers) == ("", ())
    assert record.response_content_type == ""


def test_remembered_header_names_stay_bounded_whatever_clients_send() -> None:
    names = [(f"x-made-up-{n}", "v") for n in range(finished_module.NAMES_LIMIT + 10)]
    record = from_exchange(_exchange([*names, ("Authorization", "Bearer t")], []), 5)
    assert len(record.request_headers) == len(names)
    assert len(finished_module._NAMES) <= finished_module.NAMES_LIMIT
