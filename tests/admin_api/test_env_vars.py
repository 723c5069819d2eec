"""`GET /admin/api/env-vars`: the key variable names a policy may use (each configured
provider's `api_key_env`), never values, never the rest of the environment (W-S4)."""

from __future__ import annotations

from pathlib import Path

from tests.support.proxy import HASH_KEY, start_proxy

CONFIG = """providers:
  custom:
    upstream_url: http://127.0.0.1:9
    api_key_env: MY_CUSTOM_KEY
  openai:
    upstream_url: http://127.0.0.1:9
    api_key_env: OPENAI_KEY
"""


async def test_only_the_providers_key_variable_names(tmp_path: Path) -> None:
    env = {"MY_CUSTOM_KEY": "custom-secret-value", "UNRELATED_SECRET": "nope"}
    async with start_proxy(tmp_path, env=env, config=CONFIG) as proxy:
        expected = {p.api_key_env for p in proxy.server.deps.providers.values() if p.api_key_env}
        async with proxy.client() as client:
            response = await client.get("/admin/api/env-vars")
    assert response.status_code == 200
    got = response.json()
    assert got["env_vars"] == sorted(expected)
    assert {"MY_CUSTOM_KEY", "OPENAI_KEY"} <= set(got["env_vars"])
    for name in ("UNRELATED_SECRET", "TOKENOMICS_HASH_KEY", "HOME", "PATH"):
        assert name not in got["env_vars"]
    details = {d["name"]: d for d in got["details"]}
    assert details["MY_CUSTOM_KEY"] == {
        "name": "MY_CUSTOM_KEY",
        "providers": ["custom"],
        "set": True,
    }
    assert details["OPENAI_KEY"]["set"] is True
    assert all(not d["set"] for n, d in details.items() if n not in env and n != "OPENAI_KEY"
               and n not in ("ANTHROPIC_KEY", "GROQ_KEY"))  # fmt: skip
    for secret in ("custom-secret-value", "nope", HASH_KEY, "sk-real"):
        assert secret not in response.text
