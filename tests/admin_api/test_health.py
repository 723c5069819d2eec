"""`GET /admin/api/health` and the headers every admin response carries."""

from __future__ import annotations

from tests.support.proxy import Proxy

from tokenomics.services.admin.http import CSP


async def test_health_reports_the_listener_and_admin_settings(proxy: Proxy) -> None:
    async with proxy.client() as client:
        response = await client.get("/admin/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["urls"] == [proxy.url]
    assert body["tls_enabled"] is False
    assert body["admin"] == {"enabled": True, "auth_required": False}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
