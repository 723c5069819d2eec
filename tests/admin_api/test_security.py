"""Who may use `/admin…` (D21, `proxy.md` W-S3, W-S5): the socket peer must be loopback
(forwarding headers never count) unless the listeners bind wider and basic auth is set; Host
must name this listener (DNS rebinding); writes need JSON and the same origin (CSRF)."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tests.admin_api.conftest import write
from tests.support.proxy import Proxy, start_proxy
from tests.support.raw_http import raw_request

SPOOFED = {
    "x-forwarded-for": "127.0.0.1",
    "x-real-ip": "127.0.0.1",
    "true-client-ip": "127.0.0.1",
    "forwarded": "for=127.0.0.1",
}
AUTH = {"TOKENOMICS_ADMIN_AUTH_USERNAME": "root", "TOKENOMICS_ADMIN_AUTH_PASSWORD": "s3cret"}
LOCAL_ONLY = {"error": "admin UI/API is local-only"}
POLICY = {"policy": {"base_key_env": "OPENAI_KEY"}}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def outward_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def call_app(proxy: Proxy, path: str, peer: Any, headers: dict[str, str]) -> int:
    """The server's app called with a peer no test machine can connect from."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "client": peer, "server": ("10.0.0.1", 8080), "scheme": "http",
        "http_version": "1.1",
        "headers": [(k.encode(), v.encode()) for k, v in {"host": "10.0.0.1", **headers}.items()],
    }  # fmt: skip
    assert proxy.server.app is not None
    await proxy.server.app(scope, receive, send)
    return int(sent[0]["status"])


async def test_a_non_loopback_peer_is_refused_whatever_the_forwarding_headers_say(
    proxy: Proxy,
) -> None:
    for path in ("/admin/api/health", "/admin/api/keys", "/admin/"):
        for peer in (("10.1.2.3", 5000), ("::ffff:10.1.2.3", 5000), ("192.0.2.7", 1), None):
            assert await call_app(proxy, path, peer, SPOOFED) == 403, (path, peer)
    # the same call from a loopback peer passes: the refusal is the peer's
    assert (
        await call_app(proxy, "/admin/api/health", ("127.0.0.1", 1), {"host": "localhost"}) == 200
    )


async def test_a_peer_on_the_network_is_refused_through_a_real_socket(tmp_path: Path) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    env = {"TOKENOMICS_SERVER_HOST": "0.0.0.0"}
    async with start_proxy(tmp_path, env=env) as proxy:
        port = proxy.url.rsplit(":", 1)[1]
        async with httpx2.AsyncClient(base_url=f"http://{address}:{port}") as client:
            for path in ("/admin/api/health", "/admin/"):
                response = await client.get(path, headers=SPOOFED)
                assert (response.status_code, response.json()) == (403, LOCAL_ONLY)
            response = await write(client, "POST", "/admin/api/keys", POLICY, **SPOOFED)
            assert response.status_code == 403


async def test_bound_wider_with_basic_auth_a_network_peer_must_authenticate(
    tmp_path: Path,
) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    env = {"TOKENOMICS_SERVER_HOST": "0.0.0.0", **AUTH}
    async with start_proxy(tmp_path, env=env) as proxy:
        port = proxy.url.rsplit(":", 1)[1]
        async with httpx2.AsyncClient(base_url=f"http://{address}:{port}") as client:
            refused = await client.get("/admin/api/health", headers=SPOOFED)
            assert refused.status_code == 401
            good = {"authorization": basic("root", "s3cret")}
            assert (await client.get("/admin/api/health", headers=good)).status_code == 200
            # a name the listener does not know is still refused (DNS rebinding)
            rebound = {**good, "host": f"evil.example:{port}"}
            assert (await client.get("/admin/api/health", headers=rebound)).status_code == 403


async def test_basic_auth_guards_api_and_ui_when_configured(tmp_path: Path) -> None:
    async with start_proxy(tmp_path, env=AUTH) as proxy, proxy.client() as client:
        for path in ("/admin/api/health", "/admin/", "/admin/api/keys"):
            response = await client.get(path)
            assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
            assert response.headers["www-authenticate"] == 'Basic realm="tokenomics-admin"'
            wrong = await client.get(path, headers={"authorization": basic("root", "nope")})
            assert wrong.status_code == 401
            right = await client.get(path, headers={"authorization": basic("root", "s3cret")})
            assert right.status_code == 200, path
        health = await client.get(
            "/admin/api/health", headers={"authorization": basic("root", "s3cret")}
        )
        assert health.json()["admin"]["auth_required"] is True
        assert "s3cret" not in health.text


REBOUND = ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io",
           "localhost:x", "[::1", ""]  # fmt: skip


async def test_a_host_that_does_not_name_the_listener_is_refused(proxy: Proxy) -> None:
    async with proxy.client() as client:
        for host in REBOUND:
            response = await client.get("/admin/api/health", headers={"host": host})
            assert response.status_code == 403, host
            assert response.json() == {"error": "admin: unexpected Host header"}
            posted = await write(client, "POST", "/admin/api/keys", POLICY, host=host)
            assert posted.status_code == 403
        assert (await client.get("/admin/api/keys")).json()["count"] == 0


async def test_loopback_names_are_the_listener(proxy: Proxy) -> None:
    port = proxy.url.rsplit(":", 1)[1]
    async with proxy.client() as client:
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "[::1]:1"):
            response = await client.get("/admin/api/health", headers={"host": host})
            assert response.status_code == 200, host


async def test_a_cross_origin_text_plain_post_is_refused(proxy: Proxy) -> None:
    """What a web page can send without a CORS preflight: a form or `fetch` with text/plain."""
    body = b'{"policy": "{\\"base_key_env\\": \\"OPENAI_KEY\\"}"}'
    async with proxy.client() as client:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
            response = await client.post(
                "/admin/api/keys",
                content=body,
                headers={"content-type": content_type, "origin": "http://evil.example"},
            )
            assert response.status_code == 415, content_type
            assert response.json() == {"error": "admin: Content-Type must be application/json"}
        assert (await client.get("/admin/api/keys")).json()["count"] == 0


async def test_a_json_write_from_another_origin_is_refused(proxy: Proxy) -> None:
    async with proxy.client() as client:
        for headers in (
            {"origin": "http://evil.example"},
            {"origin": "null"},
            {"origin": f"{proxy.url}.evil.example"},
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "same-site"},
        ):
            response = await write(client, "POST", "/admin/api/keys", POLICY, **headers)
            assert response.status_code == 403, headers
            assert response.json() == {"error": "admin: cross-origin request refused"}
        same = await write(
            client,
            "POST",
            "/admin/api/keys",
            POLICY,
            origin=proxy.url,
            **{"sec-fetch-site": "same-origin"},
        )
        assert same.status_code == 201, same.text
        token_hash = same.json()["hash"]
        # DELETE needs the JSON content type too, even without a body
        bare = await client.delete(f"/admin/api/keys/{token_hash}")
        assert bare.status_code == 415
        assert (await client.get("/admin/api/keys")).json()["count"] == 1


async def test_every_admin_response_has_the_security_headers(proxy: Proxy) -> None:
    async with proxy.client() as client:
        responses = [
            await client.get("/admin/api/health"),
            await client.get("/admin/"),
            await client.get("/admin/api/nope"),
            await client.get("/admin/api/keys", headers={"host": "evil.example"}),
            await client.post("/admin/api/keys", content=b"x"),
        ]
    for response in responses:
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


async def test_unknown_paths_methods_and_oversized_bodies(proxy: Proxy) -> None:
    async with proxy.client() as client:
        missing = await client.get("/admin/api/nope")
        assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
        wrong = await write(client, "PATCH", "/admin/api/keys")
        assert (wrong.status_code, wrong.json()) == (405, {"error": "method not allowed"})
        assert set(wrong.headers["allow"].split(", ")) == {"GET", "POST"}
        huge = await write(client, "POST", "/admin/api/keys", b"x" * (1024 * 1024 + 1))
        assert huge.status_code == 413


async def test_with_admin_off_its_paths_are_the_proxys(tmp_path: Path) -> None:
    env = {"TOKENOMICS_ADMIN_ENABLED": "false"}
    async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
        response = await client.get("/admin/api/health")
    assert response.status_code == 401
    assert "content-security-policy" not in response.headers


async def test_the_ui_files_are_served_and_nothing_else(proxy: Proxy) -> None:
    async with proxy.client() as client:
        redirect = await client.get("/admin")
        assert redirect.status_code == 308 and redirect.headers["location"] == "/admin/"
        page = await client.get("/admin/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        posted = await write(client, "POST", "/admin/")
        assert posted.status_code == 405
    for path in (
        b"/admin/assets/__init__.py",
        b"/admin/assets/../__init__.py",
        b"/admin/assets/..%2f__init__.py",
        b"/admin/assets/%2e%2e/ui/index.html",
        b"/admin/assets/%2e%2e%2f%2e%2e%2fapp.py",
        b"/admin/assets/.hidden.js",
        b"/admin/assets/missing.js",
        b"/admin/assets/",
        b"/admin/elsewhere",
    ):
        reply = await raw_request(proxy.url, "GET", path, {})
        assert reply.status == 404, path
