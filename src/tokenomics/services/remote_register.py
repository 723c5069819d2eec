"""`remote.webhook.auto_register` (`core.md` §5.6): this proxy registers its webhook with the
central server at start (events `token.*`), renews the registration before it expires (the
server forgets clients that stop renewing, so a crashed proxy does not stay registered) and
deregisters on graceful shutdown. Failures are logged and retried; they never stop serving."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.errors import TokenomicsError
from tokenomics.upstream.remote_http import status_text

if TYPE_CHECKING:
    from tokenomics.config.settings import RemoteWebhookSettings
    from tokenomics.upstream.remote_http import RemoteHttp

log = logging.getLogger("tokenomics.remote")
RETRY = 30.0


class Registration:
    def __init__(self, http: RemoteHttp, settings: RemoteWebhookSettings) -> None:
        self.http, self.settings = http, settings
        self.client_id = ""
        self.renew_every = RETRY

    def _payload(self) -> dict[str, Any]:
        s = self.settings
        return {"url": s.callback_url, "secret": s.secret, "signing_key": s.signing_key,
                "events": ["token.*"], "insecure": s.insecure}  # fmt: skip

    async def register(self) -> bool:
        reply = await self.http.call("POST", "/api/v1/clients", json=self._payload())
        body = reply.body if isinstance(reply.body, dict) else {}
        client_id = body.get("id")
        if reply.status != 201 or not isinstance(client_id, str):
            log.warning("webhook registration failed: %s", status_text(reply.status))
            return False
        ttl = body.get("ttl")
        self.client_id = client_id
        self.renew_every = max(1.0, ttl / 3) if isinstance(ttl, (int, float)) else RETRY
        log.info("webhook registered with the central server as %s", client_id)
        return True

    async def renew(self) -> bool:
        reply = await self.http.call("PUT", f"/api/v1/clients/{self.client_id}")
        if reply.status == 404:  # expired or forgotten: register again
            return await self.register()
        return reply.status == 200

    async def deregister(self) -> None:
        if not self.client_id:
            return
        reply = await self.http.call("DELETE", f"/api/v1/clients/{self.client_id}")
        if reply.status == 200:
            log.info("webhook %s deregistered", self.client_id)
        else:
            log.warning("webhook deregistration: %s", status_text(reply.status))
        self.client_id = ""

    async def step(self) -> bool:
        try:
            return await (self.renew() if self.client_id else self.register())
        except TokenomicsError as exc:
            log.warning("webhook registration: %s", exc)
            return False


async def run(
    registration: Registration, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Register, renew until cancelled, then deregister (bounded to 5 s)."""
    try:
        ok = await registration.step()
        task_status.started()
        while True:
            await trio.sleep(
                registration.renew_every if ok else min(RETRY, registration.renew_every)
            )
            ok = await registration.step()
    finally:
        with trio.move_on_after(5, shield=True):
            try:
                await registration.deregister()
            except TokenomicsError as exc:
                log.warning("webhook deregistration: %s", exc)
