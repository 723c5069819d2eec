"""A tiny HTTP/1.1 GET for `run`'s readiness probes (`cli.md` §2.3).

Just enough HTTP to ask a proxy `/ping` and `/health`, with TLS verification under the caller's
control (a generated CA, or none for `--insecure`), and no event loop other than Trio:

    status, body = await http_get("http://127.0.0.1:8080/ping", ssl_context=None)

Any failure (refused, timeout, TLS, garbage) raises `ProbeError` with a short reason.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import trio
from trio.abc import Stream

from tokenomics.domain.errors import ProbeError

MAX_RESPONSE = 1 << 20
TIMEOUT = 5.0  # seconds for one probe, connect to last byte


def unverified_context() -> ssl.SSLContext:
    """TLS without certificate checks: `--insecure`, or asking our own loopback proxy (with
    its self-signed certificate) whether it is there, never sending it a secret."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + path


async def http_get(url: str, *, ssl_context: ssl.SSLContext | None) -> tuple[int, bytes]:
    """GET `url` (within `TIMEOUT` s); returns (status, body). HTTPS uses `ssl_context`
    (None: verify against the system's CAs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"not an http(s) URL: {url}")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
        "User-Agent: tokenomics-run\r\nAccept: */*\r\n\r\n"
    ).encode("latin-1")
    try:
        with trio.fail_after(TIMEOUT):
            stream: Stream = await trio.open_tcp_stream(parts.hostname, port)
            if secure:
                context = ssl_context or ssl.create_default_context()
                stream = trio.SSLStream(
                    stream, context, server_hostname=parts.hostname, https_compatible=True
                )
            async with stream:
                await stream.send_all(request)
                data = await _read_all(stream)
    except trio.TooSlowError:
        raise ProbeError(f"no answer within {TIMEOUT:g}s") from None
    except ssl.SSLError as exc:
        raise ProbeError(f"TLS error: {exc.reason or exc}") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise ProbeError(_os_reason(exc)) from None
    return _parse(data)


async def _read_all(stream: Stream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
        if len(data) > MAX_RESPONSE:
            break
    return bytes(data)


def _os_reason(exc: BaseException) -> str:
    """A few words from the error behind `exc` (trio wraps refused connections twice)."""
    cause: BaseException | None = exc
    while isinstance(cause, (BaseExceptionGroup, trio.BrokenResourceError)) or (
        isinstance(cause, OSError) and not cause.strerror and cause.__cause__ is not None
    ):
        if isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        elif cause.__cause__ is None:
            break
        else:
            cause = cause.__cause__
    if isinstance(cause, ssl.SSLError):
        return f"TLS error: {cause.reason or cause}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause or exc) or type(exc).__name__


def _parse(data: bytes) -> tuple[int, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = lines[0].split(None, 2)
    if not sep or len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise ProbeError("not an HTTP answer")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in lines[1:])
    }
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    return int(fields[1]), body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise ProbeError("bad chunked encoding") from None
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)
