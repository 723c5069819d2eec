"""The central server's client registry (expiry unless renewed, URL validation, no secrets
shown, persistence) and the allow-list of synced policies."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tokenomics.domain.errors import RegistrationError
from tokenomics.domain.policy import parse_policy
from tokenomics.domain.policy_guard import PolicyGuard
from tokenomics.services.remote_clients import ClientRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_registration_expires_unless_renewed(tmp_path: Path) -> None:
    clock = Clock()
    registry = ClientRegistry(tmp_path / "clients.json", 60, clock)
    kept = registry.register({"url": "http://127.0.0.1:1/v1/webhook", "events": ["token.*"]})
    dropped = registry.register({"url": "https://proxy.example/hook"})
    clock.now += 50
    assert registry.renew(kept.id) is not None
    clock.now += 20
    assert [r.id for r in registry.all()] == [kept.id]
    assert registry.get(dropped.id) is None and registry.renew(dropped.id) is None
    assert [t.name for t in registry.targets()] == [kept.id]


def test_registrations_survive_a_restart_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    first = ClientRegistry(path, 60, Clock())
    reg = first.register({"url": "http://h/x", "secret": "s3", "signing_key": "k3"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ClientRegistry(path, 60, Clock())
    target = again.targets()[0]
    assert (target.name, target.secret, target.signing_secret) == (reg.id, "s3", "k3")
    assert again.delete(reg.id) and not again.delete(reg.id)
    assert ClientRegistry(path, 60, Clock()).all() == []


def test_the_public_view_never_shows_secrets(tmp_path: Path) -> None:
    reg = ClientRegistry(None, 60, Clock()).register(
        {"url": "http://h/x", "secret": "s3", "signing_key": "k3", "id": "cl_mine"}
    )
    shown = reg.public()
    assert reg.id.startswith("cl_") and reg.id != "cl_mine" and len(reg.id) == 19
    assert "s3" not in str(shown) and "k3" not in str(shown)
    assert shown["has_secret"] is True and shown["has_signing_key"] is True


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "url is required"),
        ({"url": "ftp://h/x"}, "invalid url scheme: ftp"),
        ({"url": "http:///x"}, "invalid url: host is required"),
        ({"url": "http://[::1/x"}, "invalid url: Invalid IPv6 URL"),
        ({"url": "http://h/x", "events": "token.*"}, "events must be a list of event types"),
        ({"url": "http://h/x", "insecure": "yes"}, "insecure must be true or false"),
        ({"url": "http://h/x", "secret": 5}, "secret must be a string (at most 1024 characters)"),
    ],
)
def test_bad_registrations_are_refused(payload: dict[str, object], message: str) -> None:
    with pytest.raises(RegistrationError) as refused:
        ClientRegistry(None, 60, Clock()).register(payload)
    assert str(refused.value) == message


def test_the_guard_allows_configured_keys_and_hosts_and_never_our_own_secrets() -> None:
    guard = PolicyGuard.build(
        ["OPENAI_API_KEY", "TOKENOMICS_ENCRYPTION_KEY", ""],
        ["https://api.openai.com/v1", "mock://tokenomics"],
        ["LLM.Internal"],
        ["TOKENOMICS_HASH_KEY", "TOKENOMICS_ENCRYPTION_KEY"],
    )

    def problems(policy: str) -> list[str]:
        return guard.violations(parse_policy(policy))

    assert (
        problems('{"base_key_env":"OPENAI_API_KEY","upstream_url":"https://API.openai.com"}') == []
    )
    assert (
        problems('{"base_key_env":"OPENAI_API_KEY","upstream_url":"http://llm.internal:8"}') == []
    )
    assert problems('{"base_key_env":"TOKENOMICS_ENCRYPTION_KEY"}') == [
        "base_key_env TOKENOMICS_ENCRYPTION_KEY is not an allowed key variable"
    ]
    assert problems('{"base_key_env":"HOME"}') == [
        "base_key_env HOME is not an allowed key variable"
    ]
    nested = (
        '{"providers":{"openai":[{"base_key_env":"OPENAI_API_KEY",'
        '"upstream_url":"https://evil.example"}]}}'
    )
    assert problems(nested) == [
        "providers.openai[0].upstream_url host evil.example is not an allowed upstream"
    ]
