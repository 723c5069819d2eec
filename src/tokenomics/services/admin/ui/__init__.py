"""The admin UI's static files, shipped as package data of this package (no CDN, nothing
fetched at run time): `/admin/` is `index.html`, `/admin/assets/<name>` the file `<name>`.

`serve_ui(path)` answers `(status, headers, body)`, or None when `path` names nothing here (the
admin router then answers 404). The router adds the security headers (CSP, nosniff, no-store).
"""

from __future__ import annotations

import re
from importlib import resources

Headers = list[tuple[bytes, bytes]]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
# One plain file name: no directories, no dot files, only the types above.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ASSETS = "/admin/assets/"


def _file(name: str) -> tuple[int, Headers, bytes] | None:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if not _NAME.fullmatch(name) or ".." in name or suffix not in CONTENT_TYPES:
        return None
    resource = resources.files(__package__).joinpath(name)
    if not resource.is_file():
        return None
    body = resource.read_bytes()
    return 200, [(b"content-type", CONTENT_TYPES[suffix].encode())], body


def serve_ui(path: str) -> tuple[int, Headers, bytes] | None:
    """The response for a GET of `path` (already percent-decoded), or None for 404."""
    if path == "/admin":
        return 308, [(b"location", b"/admin/"), (b"content-type", b"text/plain")], b""
    if path == "/admin/":
        return _file("index.html")
    if path.startswith(ASSETS):
        return _file(path[len(ASSETS) :])
    return None
