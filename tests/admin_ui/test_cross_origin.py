"""A page on another origin cannot change anything through the admin API: a `text/plain`
no-cors POST (the CSRF classic), a form POST, a no-cors DELETE and a JSON POST (stopped at the
preflight) from http://localhost:<other port> all leave the key store as it was."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.admin_ui.browser import browser_page, in_browser, needs_chromium
from tests.admin_ui.conftest import MOCK_POLICY
from tests.support.proxy import Proxy

pytestmark = [pytest.mark.slow, needs_chromium]

ATTACK = """<!doctype html><html><body>
<form id="form" method="POST" action="TARGET/admin/api/keys" enctype="text/plain" target="sink">
<input name='{"policy":"POLICY","x":"' value='"}'></form>
<iframe name="sink"></iframe>
<script>
const target = "TARGET/admin/api/keys";
const body = JSON.stringify({policy: "POLICY"});
window.results = {};
async function attempt(name, init, url = target) {
  try { const r = await fetch(url, init); window.results[name] = "answered " + r.type + " " + r.status; }
  catch (e) { window.results[name] = "blocked"; }
}
(async () => {
  await attempt("plain", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body});
  await attempt("json", {method: "POST", mode: "cors", headers: {"Content-Type": "application/json"}, body});
  await attempt("delete", {method: "DELETE", mode: "no-cors"}, target + "/HASH");
  document.getElementById("form").submit();
  window.results.done = true;
})();
</script></body></html>"""


@contextmanager
def attacker_site(target: str, key_hash: str) -> Iterator[str]:
    """A tiny HTTP server on another port serving the attack page; yields its URL on `localhost`
    (another host and port: another origin)."""
    policy = json.dumps(MOCK_POLICY).replace('"', '\\"')
    page = (
        ATTACK.replace("TARGET", target)
        .replace("POLICY", policy)
        .replace("HASH", key_hash)
        .encode()
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def test_another_origin_cannot_create_or_delete_keys(admin_proxy: Proxy) -> None:
    url = admin_proxy.url
    existing = admin_proxy.token(MOCK_POLICY)

    def scenario() -> dict[str, str]:
        with (
            attacker_site(url, admin_proxy.key.hash(existing)) as evil,
            browser_page() as (page, _watch),
        ):
            page.goto(evil)
            page.wait_for_function("window.results && window.results.done === true")
            page.wait_for_load_state("networkidle")
            return dict(page.evaluate("window.results"))

    results = await in_browser(scenario)
    assert results["plain"] == "answered opaque 0"  # sent (and refused: see the store below)
    assert results["json"] == "blocked"  # the preflight gets no CORS grant
    assert results["delete"] == "blocked"  # no-cors allows only GET, HEAD and POST
    async with admin_proxy.client() as client:
        keys = (await client.get("/admin/api/keys")).json()
    assert keys["count"] == 1
    assert keys["tokens"][0]["token_hash"] == admin_proxy.key.hash(existing)
