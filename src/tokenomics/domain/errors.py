"""The one error tree of Tokenomics.

Every error we raise on purpose is a `TokenomicsError`. Each knows the HTTP status it maps to
when it reaches a client and carries a message that is safe to show (no secrets, no patterns).
Foreign errors (sqlite, httpx2, yaml, sockets) are translated into these at the module boundary;
a few module-private signals (a parser's "need more bytes", a transport's "connection reset")
stay next to their code because they never leave it.

    TokenomicsError                    500  attributes every error has: status, message,
    │                                       retry_after (None or seconds), family (None or
    │                                       the API family the client's error is shaped for)
    ├── ConfigError                    500  configuration cannot be used
    │   └── UpstreamConfigError        500  an upstream URL as configured
    ├── RequestError                   400  the client's request is wrong
    │   ├── PolicyError, DurationError, RegistrationError
    │   └── BadPath ─ RefusedPath          a path that cannot be forwarded (RefusedPath: family)
    ├── Forbidden                      403  ModelNotAllowed, Blocked (a `fail` rule matched)
    ├── LimitError                     429  RateLimited (retry_after), BudgetExceeded
    │                                       ─ RunBudgetExceeded (`tokenomics run --max-*`)
    ├── StoreError                     503  NotFoundError 404, ConflictError 409, CryptoError,
    │                                       RedisUnavailable
    ├── UpstreamError                  502  UpstreamTimeout 504, UpstreamTooLarge,
    │                                       RemoteError (the central server)
    ├── HttpError                      any  an answer with its own status: ProxyError (+
    │                                       retry_after), AdminError (+ headers), ApiError
    ├── SecurityError                  500  a secret (hash key) is missing or unusable
    ├── CliError                         -  a command failed: CommandError, PidFileError,
    │                                       StartError, ProxyUnreachable, ProbeError
    └── ErrorGroup                          several of the above at once (a nursery's group)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.engine import Match
    from tokenomics.domain.usage import Family


class TokenomicsError(Exception):
    """Base of all our errors. `str(err)` is one clear sentence for the user."""

    status: int = 500
    retry_after: float | None = None  # seconds; answered as `Retry-After` when set
    family: Family | None = None  # the API family the error body is shaped for, when known

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ErrorGroup(TokenomicsError):
    """Several of our errors that arrived together (from one nursery); the first one's status.
    `errors` is flat, in the order they were raised, each reported on its own line."""

    def __init__(self, errors: Sequence[TokenomicsError]) -> None:
        super().__init__("\n".join(error.message for error in errors))
        self.errors = tuple(errors)
        self.status = errors[0].status


# --- configuration -------------------------------------------------------------------------


class ConfigError(TokenomicsError):
    """A configuration value is missing, malformed or of the wrong type."""


class UpstreamConfigError(ConfigError):
    """The upstream URL cannot be used as configured (a 500: the operator must fix it)."""


# --- the client's request ------------------------------------------------------------------


class RequestError(TokenomicsError):
    """The client's request (or a value it sent) is wrong: a 400."""

    status = 400


class PolicyError(RequestError):
    """A policy document does not parse or does not validate."""


class DurationError(RequestError):
    """An expiry or window duration cannot be parsed."""


class RegistrationError(RequestError):
    """A webhook registration on the central server is not valid."""


class BadPath(RequestError):
    """The request path cannot be forwarded as it is classified (HTTP 400)."""


class RefusedPath(BadPath):
    """A `BadPath` with the API family its error is shaped for."""

    def __init__(self, message: str, family: Family) -> None:
        super().__init__(message)
        self.family = family


# --- refusals ------------------------------------------------------------------------------


class Forbidden(TokenomicsError):
    """The request is understood and refused by policy: a 403."""

    status = 403


class ModelNotAllowed(Forbidden):
    """The requested model is not permitted by the resolved policy."""


class Blocked(Forbidden):
    """A `fail` rule matched. The message is the client-safe text; `log_message` quotes."""

    def __init__(self, matches: Sequence[Match]) -> None:
        last = matches[-1]
        super().__init__(f"request blocked by rule {last.index}: {last.client_message}")
        self.matches = tuple(matches)
        self.rule_index = last.index
        self.log_message = f"request blocked by rule {last.index}: {last.message}"


class LimitError(TokenomicsError):
    """A limit refused the request: a 429."""

    status = 429


class RateLimited(LimitError):
    """A request was refused by a rate limit; `retry_after` is in seconds (> 0)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExceeded(LimitError):
    """A request would take a token's usage over its budget (not transient: no retry).

    `kind` is "tokens" or "cost"; `used`, `requested` and `limit` are in tokens or dollars
    (the numbers of the `budget.exceeded` event).
    """

    def __init__(
        self, message: str, *, kind: str, used: float, requested: float, limit: float
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.used = used
        self.requested = requested
        self.limit = limit


class RunBudgetExceeded(BudgetExceeded):
    """A request would take the run over one of its limits. `kind`: "cost", "tokens",
    "requests" or "duration"."""

    def __init__(self, limit_text: str, detail: str, **numbers: float | str) -> None:
        super().__init__(
            f"run budget exceeded: {limit_text} for this run ({detail})",
            kind=str(numbers["kind"]),
            used=float(numbers["used"]),
            requested=float(numbers["requested"]),
            limit=float(numbers["limit"]),
        )
        self.limit_text = limit_text


# --- storage -------------------------------------------------------------------------------


class StoreError(TokenomicsError):
    """The token store cannot be opened, read or written."""

    status = 503


class NotFoundError(StoreError):
    """A token hash is not in the store."""

    status = 404


class ConflictError(StoreError):
    """A token hash already exists."""

    status = 409


class CryptoError(StoreError):
    """An encrypted record cannot be decrypted (missing or wrong key, tampering)."""


class RedisUnavailable(StoreError):
    """Redis could not be reached or answered too late or out of protocol (503)."""


# --- upstreams -----------------------------------------------------------------------------


class UpstreamError(TokenomicsError):
    """The upstream could not be reached or broke off; `reason` is safe to show."""

    status = 502

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamTooLarge(UpstreamError):
    """The upstream's response body is over the reader's limit (never silently cut)."""


class RemoteError(UpstreamError):
    """The central server could not be reached or answered with an error."""


# --- answers with their own status ---------------------------------------------------------


class HttpError(TokenomicsError):
    """An answer whose status the raiser chooses (`Retry-After` when `retry_after` is set)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ProxyError(HttpError):
    """An error the proxy answers itself on the request path."""


class AdminError(HttpError):
    """Answer the admin request with `status`, `{"error": message}` and extra `headers`."""

    def __init__(
        self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(status, message)
        self.headers = headers or []


class ApiError(HttpError):
    """Answer a request to the central server's API with `status` and the message."""


class SecurityError(TokenomicsError):
    """A required secret (hash key) is missing or unusable."""


# --- the command line ----------------------------------------------------------------------


class CliError(TokenomicsError):
    """A command failed; the CLI prints `Error: <message>` and exits 1."""


class CommandError(CliError):
    """A command's arguments or its work failed."""


class PidFileError(CliError):
    """The PID file or its lock cannot be read or written."""


class StartError(CliError):
    """The background server or a child command could not be started."""


class ProxyUnreachable(CliError):
    """The remote proxy does not answer `/ping`."""


class ProbeError(CliError):
    """A probe got no usable HTTP answer; the message says why in a few words."""


def flatten(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The leaves of a (nested) exception group, in order."""
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(flatten(exc))
        else:
            leaves.append(exc)
    return leaves
