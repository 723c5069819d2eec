"""Upstream URLs: joining a provider root with the request path, placeholders, redaction."""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tokenomics.domain.errors import UpstreamConfigError

_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


@functools.lru_cache(maxsize=1024)  # the same few upstreams, paths and models on every request
def join_url(base: str, path: str, query: str, *, model: str = "") -> str:
    """`base` root (its own path kept) + request `path` + `query`; `{model}` substituted."""
    path = path.replace("{model}", model) if model else path
    try:
        parts = urlsplit(base)
    except ValueError:
        raise UpstreamConfigError("invalid upstream URL") from None
    if parts.scheme not in ("http", "https", "mock") or not parts.netloc:
        raise UpstreamConfigError("invalid upstream URL")
    joined = parts.path.rstrip("/") + (path if path.startswith("/") else "/" + path)
    unresolved = _PLACEHOLDER.findall(parts.netloc + joined)
    if unresolved:
        raise UpstreamConfigError(
            f"upstream URL has unresolved placeholders {', '.join(unresolved)}: "
            "set the provider's upstream_url (providers.yaml) or the policy's upstream_url"
        )
    return urlunsplit((parts.scheme, parts.netloc, joined, query, ""))


def with_query(url: str, extra: dict[str, str], *, override: tuple[str, ...] = ()) -> str:
    """Add query parameters: defaults only when absent, names in `override` always replaced."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in pairs}
    pairs = [(n, v) for n, v in pairs if n not in override]
    for name, value in extra.items():
        if name in override or name not in present:
            pairs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def redact(url: str) -> str:
    """The URL without credentials and query string (either may carry a key), for logs."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
