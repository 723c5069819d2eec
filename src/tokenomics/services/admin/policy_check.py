"""`POST /admin/api/policy/validate`: the policy editor's check-as-you-type.

The same validation and messages as creating a key (`token_ops.validated_policy`), without
writing anything: 200 `{"valid": true}`, or 400 `{"error": "invalid policy: <reason>"}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from tokenomics.domain.errors import AdminError
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route
from tokenomics.services.token_ops import validated_policy

if TYPE_CHECKING:
    import re


def policy_text(value: object) -> str:
    """The policy of a request body: JSON text as sent, or an object re-encoded."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    raise AdminError(400, "policy is required")


async def validate(request: Request, _match: re.Match[str]) -> Response:
    validated_policy(policy_text(request.json_object().get("policy")))
    return json_response(200, {"valid": True})


def routes() -> list[Route]:
    return [route("POST", "/policy/validate", validate)]
