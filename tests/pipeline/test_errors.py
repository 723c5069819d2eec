"""The one error tree: every error a client can see maps to its HTTP status and, through
`error_reply`, to an error body of the client's API family (with `Retry-After` when the error
carries one); every class of the tree is listed here, so a new error cannot skip the table."""

from __future__ import annotations

import orjson
import pytest

from tokenomics.domain import errors as E
from tokenomics.domain.engine import Match
from tokenomics.formats.classify import route_request
from tokenomics.pipeline.exchange import Exchange
from tokenomics.pipeline.run import error_reply

MATCH = Match(2, "no-secrets", "fail", "matched 'sk-…'", "a secret was found")

# (error, its status): one instance of every error that can reach an HTTP client.
HTTP_FACING: list[tuple[E.TokenomicsError, int]] = [
    (E.UpstreamConfigError("invalid upstream URL"), 500),
    (E.ConfigError("bad config"), 500),
    (E.PolicyError("policy does not validate"), 400),
    (E.DurationError("bad duration"), 400),
    (E.RegistrationError("bad registration"), 400),
    (E.RequestError("bad request"), 400),
    (E.BadPath("request path refused: x"), 400),
    (E.RefusedPath("request path refused: y", "gemini"), 400),
    (E.ModelNotAllowed("model not allowed"), 403),
    (E.Blocked([MATCH]), 403),
    (E.Forbidden("forbidden"), 403),
    (E.RateLimited("rate limited", 1.2), 429),
    (E.BudgetExceeded("over budget", kind="tokens", used=1, requested=2, limit=2), 429),
    (E.RunBudgetExceeded("$1 max cost", "used $1", kind="cost", used=1, requested=1, limit=1), 429),
    (E.LimitError("limit"), 429),
    (E.StoreError("store busy"), 503),
    (E.NotFoundError("no such token"), 404),
    (E.ConflictError("token exists"), 409),
    (E.CryptoError("cannot decrypt"), 503),
    (E.RedisUnavailable("redis down"), 503),
    (E.UpstreamError("upstream reset"), 502),
    (E.UpstreamTimeout("upstream too slow"), 504),
    (E.UpstreamTooLarge("upstream response larger than 64 MiB"), 502),
    (E.RemoteError("central server down"), 502),
    (E.HttpError(418, "teapot"), 418),
    (E.ProxyError(413, "body too large"), 413),
    (E.AdminError(401, "log in", [(b"www-authenticate", b"Basic")]), 401),
    (E.ApiError(405, "method not allowed"), 405),
    (E.SecurityError("no hash key"), 500),
    (E.TokenomicsError("internal"), 500),
]
CLI_ONLY = {E.CliError, E.CommandError, E.PidFileError, E.StartError, E.ProxyUnreachable,
            E.ProbeError, E.ErrorGroup}  # fmt: skip

# What the body says for each status, per family (the SDKs branch on these).
ANTHROPIC = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
             413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
             504: "timeout_error", 401: "authentication_error"}  # fmt: skip
GOOGLE = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429:
          "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 401:
          "UNAUTHENTICATED", 413: "INVALID_ARGUMENT"}  # fmt: skip


def _subclasses(cls: type[E.TokenomicsError]) -> set[type[E.TokenomicsError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_class_of_the_tree_is_in_the_table_of_http_errors_or_is_cli_only() -> None:
    listed = {type(error) for error, _ in HTTP_FACING}
    assert _subclasses(E.TokenomicsError) | {E.TokenomicsError} == listed | CLI_ONLY


@pytest.mark.parametrize(("error", "status"), HTTP_FACING, ids=lambda v: type(v).__name__)
def test_each_error_has_its_status(error: E.TokenomicsError, status: int) -> None:
    assert error.status == status
    assert str(error) == error.message


def _exchange(family: str) -> Exchange:
    path = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
            "gemini": "/v1beta/models/g:generateContent"}[family]  # fmt: skip
    ex = Exchange("POST", path, "", [], b"", "peer", 0.0, "", "id")
    ex.route = route_request("POST", path, {})
    assert ex.family == family
    return ex


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize(("error", "status"), HTTP_FACING, ids=lambda v: type(v).__name__)
def test_each_error_answers_its_status_in_the_clients_family(
    error: E.TokenomicsError, status: int, family: str
) -> None:
    reply = error_reply(_exchange(family), error)
    assert reply.status == status
    body = orjson.loads(reply.body)
    shaped = error.family or family  # a refused path knows its family before the exchange does
    if shaped == "anthropic":
        assert body["type"] == "error"
        assert body["error"] == {
            "type": ANTHROPIC.get(status, "api_error"),
            "message": error.message,
        }
    elif shaped == "gemini":
        assert body["error"] == {"code": status, "message": error.message,
                                 "status": GOOGLE.get(status, "INTERNAL")}  # fmt: skip
    else:
        assert body["error"]["message"] == error.message
        assert body["error"]["code"] == status


def test_retry_after_is_a_typed_attribute_answered_as_a_whole_number_of_seconds() -> None:
    assert E.TokenomicsError("x").retry_after is None
    limited = error_reply(_exchange("openai"), E.RateLimited("slow down", 1.2))
    assert ("retry-after", "2") in limited.headers
    proxy = error_reply(_exchange("openai"), E.ProxyError(503, "draining", retry_after=0.01))
    assert ("retry-after", "1") in proxy.headers
    plain = error_reply(_exchange("openai"), E.UpstreamError("reset"))
    assert all(name != "retry-after" for name, _ in plain.headers)


def test_an_exhausted_budget_tells_the_sdks_not_to_retry() -> None:
    error = E.BudgetExceeded("over", kind="cost", used=1.0, requested=0.5, limit=1.0)
    assert ("x-should-retry", "false") in error_reply(_exchange("openai"), error).headers


def test_branches_group_errors_by_kind() -> None:
    assert isinstance(E.RedisUnavailable("x"), E.StoreError)
    assert isinstance(E.RemoteError("x"), E.UpstreamError)
    assert isinstance(E.UpstreamConfigError("x"), E.ConfigError)
    assert isinstance(E.RefusedPath("x", "openai"), E.BadPath)
    assert isinstance(E.BudgetExceeded("x", kind="t", used=0, requested=0, limit=0), E.LimitError)
    assert isinstance(E.Blocked([MATCH]), E.Forbidden)
    assert isinstance(E.AdminError(400, "x"), E.HttpError)
    assert isinstance(E.StartError("x"), E.CliError)


def test_an_error_group_keeps_every_error_and_the_first_ones_status() -> None:
    group = E.ErrorGroup([E.UpstreamTimeout("slow"), E.StoreError("busy")])
    assert [e.message for e in group.errors] == ["slow", "busy"]
    assert group.status == 504
    assert str(group) == "slow\nbusy"
