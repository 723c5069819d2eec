"""`doctor`'s checks of the central server (`remote.url`): reachable, authorised, and how
fresh this host's last sync is (`{dir}/remote_sync.json`, written by the running proxy)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tokenomics.cli.checks import Check
from tokenomics.domain.errors import UpstreamError
from tokenomics.services.remote_fleet import describe_state, read_state
from tokenomics.upstream.fetch import fetch_blocking, os_reason, unverified_context

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenomics.config.settings import Settings


def _probe(settings: Settings, timeout: float) -> int | str:
    """The HTTP status of `GET {url}/api/v1/tokens`, or why there was none."""
    remote = settings.remote
    headers = [("authorization", f"Bearer {remote.api_key}")] if remote.api_key else []
    try:
        fetched = fetch_blocking(
            "GET", remote.url.rstrip("/") + "/api/v1/tokens", headers=headers, within=timeout,
            ssl_context=unverified_context() if remote.insecure else None,
        )  # fmt: skip
    except UpstreamError as exc:
        return os_reason(exc)[:200]
    return fetched.status


def remote(settings: Settings, timeout: float = 5.0) -> Iterator[Check]:
    r = settings.remote
    url = r.url.split("?", 1)[0]
    fix = "start `tokenomics remote` there, or correct remote.url"
    status = _probe(settings, timeout)
    if isinstance(status, str):
        yield Check("fail", "remote server", f"cannot reach {url}: {status}", fix)
    elif status in (401, 403):
        key_fix = "set remote.api_key (TOKENOMICS_REMOTE_API_KEY) to the server's key"
        yield Check("fail", "remote auth", f"{url} answered {status}", key_fix)
    elif status != 200:
        yield Check("fail", "remote server", f"{url} answered {status}", fix)
    else:
        yield Check("ok", "remote server", f"{url} reachable and authorised (sync every {r.sync}s)")
    level, detail = describe_state(read_state(settings.data_dir), time.time())
    yield Check(level, "remote sync", detail, "see the proxy's log for the sync errors")
