"""`cli.md` §6.1-6.3 and §10 scenarios 68-71: `provider list|models|test`, run in-process.

`provider test` only ever talks to the in-process mock upstream on a loopback port, to the
built-in `mock` provider (answered in-process), or to a closed loopback port: never the internet.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio
from tests.conftest import Result
from tests.support.mock_upstream import mock_upstream
from tests.support.proxy import start_proxy

from tokenomics.cli import provider as provider_cli
from tokenomics.config.providers import ProviderConfig
from tokenomics.upstream.mock import JSON_TYPE, MockProvider, MockReply

SECRET = "sk-very-secret-key-0123456789"
LINE = re.compile(r"^(?P<name>\S+) +(?P<status>OK|AUTH|FAIL|SKIP) +(?P<detail>.*)$")


@dataclass(slots=True)
class FixedStatus(MockProvider):
    """A stub upstream that answers every request with one status (after `delay` seconds)."""

    status: int = 200
    delay: float = 0.0

    def respond(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> MockReply:
        return MockReply(
            self.status, (("content-type", JSON_TYPE),), (b'{"data": []}',), self.delay
        )


def write_providers(work: Path, entries: str) -> None:
    (work / "providers.yaml").write_text(entries, encoding="utf-8")


def stub_entry(name: str, url: str, **fields: str) -> str:
    lines = [f"{name}:", f"  upstream_url: {url}", "  api_key_env: STUB_KEY"]
    lines += [f"  {key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


async def run_cli(cli: Callable[..., Result], *argv: str) -> Result:
    """The CLI in a worker thread, so the mock upstream keeps serving on this trio loop."""
    return await trio.to_thread.run_sync(partial(cli, *argv))


def parse_line(out: str, name: str) -> re.Match[str]:
    for line in out.splitlines():
        match = LINE.match(line)
        if match and match.group("name") == name:
            assert line.startswith(f"{name:<16}  {match.group('status'):<4}  "), line
            return match
    raise AssertionError(f"no line for {name} in {out!r}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ── list ─────────────────────────────────────────────────────────────────────────────────────


def test_list_table_has_the_header_dashes_and_one_row_per_provider(cli) -> None:
    result = cli("provider", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert " ".join(lines[0].split()) == "NAME UPSTREAM AUTH API KEY ENV KEY? MODELS"
    assert lines[0] == (
        f"{'NAME':<16} {'UPSTREAM':<40} {'AUTH':<8} {'API KEY ENV':<28} {'KEY?':<6} MODELS"
    )
    assert lines[1].split() == ["----", "--------", "----", "-----------", "----", "------"]
    names = [line.split()[0] for line in lines[2:]]
    assert names == sorted(names)
    assert {"openai", "anthropic", "mock", "ollama"} <= set(names)


def test_list_shows_na_for_providers_without_key_variable_and_truncates_long_urls(cli) -> None:
    result = cli("provider", "list")
    rows = {line.split()[0]: line for line in result.out.splitlines()[2:]}
    assert rows["ollama"][16 + 1 + 40 + 1 + 8 + 1 + 28 + 1 :].split()[0] == "n/a"
    assert rows["mock"].split()[2] == "none"
    upstream = rows["bedrock"][17:57]
    assert len(upstream) == 40 and upstream.endswith("...")
    assert upstream[:37] == "https://bedrock-runtime.{region}.amazonaws.com/openai"[:37]


def test_list_key_column_says_whether_the_key_variable_is_set(cli, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    result = cli("provider", "list")
    rows = {line.split()[0]: line.split() for line in result.out.splitlines()[2:]}
    assert rows["openai"][-2:] == ["yes", "12"]
    assert rows["groq"][-2] == "no"
    assert SECRET not in result.out + result.err


def test_list_json_is_sorted_with_the_documented_fields(cli, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = cli("provider", "list", "--output", "json")
    assert result.code == 0, result.err
    items = json.loads(result.out)
    assert [item["name"] for item in items] == sorted(item["name"] for item in items)
    by_name = {item["name"]: item for item in items}
    assert list(by_name["openai"]) == [
        "name", "upstream_url", "auth_scheme", "api_key_env", "key_set", "model_count",
    ]  # fmt: skip
    assert by_name["openai"]["key_set"] is True
    assert by_name["anthropic"]["key_set"] is False
    assert by_name["google_gemini"]["chat_path"] == "/v1beta/openai/chat/completions"
    assert by_name["mock"] == {
        "name": "mock",
        "upstream_url": "mock://tokenomics",
        "auth_scheme": "none",
        "api_key_env": "",
        "key_set": False,
        "model_count": 3,
    }
    assert result.out.startswith('[\n  {\n    "name": ')
    assert SECRET not in result.out


def test_list_rejects_an_unknown_output_format(cli) -> None:
    result = cli("provider", "list", "--output", "yaml")
    assert result.code == 1
    assert "yaml" in result.err


def test_list_includes_providers_yaml_and_inline_config_entries(cli, work: Path) -> None:
    write_providers(work, stub_entry("zz_local", "http://127.0.0.1:9"))
    (work / "config.yaml").write_text(
        "providers:\n  zz_inline:\n    upstream_url: https://example.invalid\n", encoding="utf-8"
    )
    result = cli("provider", "list", "--output", "json")
    by_name = {item["name"]: item for item in json.loads(result.out)}
    assert by_name["zz_local"]["upstream_url"] == "http://127.0.0.1:9"
    assert by_name["zz_inline"]["auth_scheme"] == "none"


def test_list_reports_a_malformed_providers_file(cli, work: Path) -> None:
    write_providers(work, "broken:\n  auth_scheme: magic\n")
    result = cli("provider", "list")
    assert result.code == 1
    assert result.err.startswith("Error: ") and "auth_scheme" in result.err


# ── models ───────────────────────────────────────────────────────────────────────────────────


def test_models_of_one_provider_prints_one_model_per_line(cli) -> None:
    result = cli("provider", "models", "openai")
    assert result.code == 0
    assert result.out.splitlines()[:3] == ["gpt-5", "gpt-5-mini", "gpt-5-nano"]
    assert all(line and not line.startswith(" ") for line in result.out.splitlines())


def test_models_of_an_unknown_provider_is_an_error(cli) -> None:
    result = cli("provider", "models", "nope")
    assert result.code == 1
    assert result.err == 'Error: provider "nope" not found in config\n'


def test_models_without_a_name_lists_every_provider(cli, work: Path) -> None:
    write_providers(work, stub_entry("zz_empty", "http://127.0.0.1:9"))
    result = cli("provider", "models")
    assert result.code == 0
    assert "mock:\n  mock-gpt\n  mock-claude\n  mock-gemini\n" in result.out
    assert result.out.endswith("zz_empty: (none)\n")
    assert cli("provider", "models", "zz_empty").out == "zz_empty: no models configured\n"


# ── test ─────────────────────────────────────────────────────────────────────────────────────


def test_the_builtin_mock_answers_in_process(cli) -> None:
    result = cli("provider", "test", "mock")
    assert result.code == 0, result.err
    assert re.fullmatch(r"mock {12}  OK    \d+ms\n", result.out)


def test_placeholders_are_skipped_and_unknown_names_reported(cli) -> None:
    result = cli("provider", "test", "azure", "vertex_ai", "nope", "mock")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["azure", "vertex_ai", "nope", "mock"]
    assert parse_line(result.out, "azure").group("status") == "SKIP"
    assert "placeholders" in parse_line(result.out, "vertex_ai").group("detail")
    assert lines[2] == f"{'nope':<16}  UNKNOWN (not in config)"


async def test_reachable_provider_is_ok_with_latency_and_gets_the_bearer_key(
    cli, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_KEY", SECRET)
    async with mock_upstream() as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 0, result.err
    assert re.fullmatch(r"\d+ms", parse_line(result.out, "stub").group("detail"))
    [request] = mock.requests
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in result.out + result.err


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credentials_are_auth_and_exit_1(
    cli, work: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("STUB_KEY", SECRET)
    async with mock_upstream(FixedStatus(status=status)) as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 1
    line = parse_line(result.out, "stub")
    assert line.group("status") == "AUTH"
    assert line.group("detail").startswith("reachable but credentials invalid or missing")
    assert f"HTTP {status}" in line.group("detail")
    assert result.err == "Error: one or more providers failed connectivity test\n"
    assert SECRET not in result.out + result.err


async def test_missing_key_is_named_in_the_auth_detail(cli, work: Path) -> None:
    async with mock_upstream(FixedStatus(status=401)) as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub")
    assert "$STUB_KEY is not set" in parse_line(result.out, "stub").group("detail")
    assert "authorization" not in mock.requests[0].headers


@pytest.mark.parametrize("status", [404, 500, 503, 400])
async def test_not_found_and_server_errors_fail(cli, work: Path, status: int) -> None:
    async with mock_upstream(FixedStatus(status=status)) as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub", "mock")
    assert result.code == 1
    line = parse_line(result.out, "stub")
    assert line.group("status") == "FAIL"
    assert f"HTTP {status} from GET {mock.url}/v1/models" in line.group("detail")
    assert parse_line(result.out, "mock").group("status") == "OK"


async def test_rate_limited_provider_is_reachable(cli, work: Path) -> None:
    async with mock_upstream(FixedStatus(status=429)) as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 0
    assert "HTTP 429" in parse_line(result.out, "stub").group("detail")


async def test_header_auth_extra_headers_and_query_defaults_are_sent(
    cli, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_KEY", SECRET)
    async with mock_upstream() as mock:
        entry = stub_entry(
            "stub", f"{mock.url}/base", auth_scheme="header", auth_header="x-api-key",
            headers="{anthropic-version: '2023-06-01'}", query="{api-version: '2024-10-21'}",
        )  # fmt: skip
        write_providers(work, entry)
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 0, result.out + result.err
    [request] = mock.requests
    assert request.path == "/base/v1/models?api-version=2024-10-21"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers


async def test_query_auth_key_is_sent_but_never_printed(
    cli, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_KEY", SECRET)
    async with mock_upstream(FixedStatus(status=404)) as mock:
        write_providers(work, stub_entry("stub", mock.url, auth_scheme="query"))
        result = await run_cli(cli, "--debug", "provider", "test", "stub")
    assert mock.requests[0].path == f"/v1/models?key={SECRET}"
    assert parse_line(result.out, "stub").group("status") == "FAIL"
    assert SECRET not in result.out + result.err
    assert "?" not in parse_line(result.out, "stub").group("detail")


async def test_gemini_style_chat_path_tests_the_models_list_beside_it(cli, work: Path) -> None:
    async with mock_upstream() as mock:
        entry = stub_entry("stub", mock.url, chat_path="/v1beta/openai/chat/completions")
        write_providers(work, entry)
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 0
    assert mock.requests[0].path == "/v1beta/openai/models"


def test_unreachable_provider_fails_with_a_safe_reason(cli, work: Path) -> None:
    write_providers(work, stub_entry("stub", f"http://127.0.0.1:{closed_port()}"))
    result = cli("provider", "test", "stub")
    assert result.code == 1
    line = parse_line(result.out, "stub")
    assert (line.group("status"), line.group("detail")) == (
        "FAIL",
        "unreachable: could not connect to upstream",
    )


async def test_slow_provider_times_out(cli, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider_cli, "TIMEOUT", 0.2)
    async with mock_upstream(FixedStatus(delay=30)) as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test", "stub")
    assert result.code == 1
    detail = parse_line(result.out, "stub").group("detail")
    assert detail == "unreachable: no response headers from upstream within 0.2s"


async def test_without_names_every_provider_is_tested_in_order(
    cli, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = provider_cli.load_providers

    def only_local(**kwargs: object) -> dict[str, ProviderConfig]:
        catalogue = real_load(**kwargs)  # type: ignore[arg-type]
        return {k: v for k, v in catalogue.items() if k in ("azure", "mock", "stub")}

    monkeypatch.setattr(provider_cli, "load_providers", only_local)
    async with mock_upstream() as mock:
        write_providers(work, stub_entry("stub", mock.url))
        result = await run_cli(cli, "provider", "test")
    assert result.code == 0, result.out + result.err
    assert [line.split()[:2] for line in result.out.splitlines()] == [
        ["azure", "SKIP"], ["mock", "OK"], ["stub", "OK"],
    ]  # fmt: skip


def test_insecure_is_accepted(cli) -> None:
    result = cli("provider", "test", "--insecure", "mock")
    assert result.code == 0
    assert parse_line(result.out, "mock").group("status") == "OK"


def test_probe_request_is_built_from_the_provider_config() -> None:
    provider = ProviderConfig(
        name="p", upstream_url="https://api.example.com/openai", api_key_env="K",
        auth_scheme="query", query={"api-version": "1"},
    )  # fmt: skip
    request = provider_cli.build_probe(provider, {"K": "secret"})
    assert request.url == "https://api.example.com/openai/v1/models?api-version=1&key=secret"
    assert ("authorization", "Bearer secret") not in request.headers
    assert provider_cli.models_path(ProviderConfig(name="x", chat_path="/v1/x/chat")) == (
        "/v1/models"
    )
    assert provider_cli.models_path(ProviderConfig(name="x", chat_path="/custom")) == "/"


async def test_insecure_skips_certificate_verification(
    cli, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTPS upstream with a certificate no system CA signed (our own proxy, auto-generated
    certificate): verified, it is unreachable; with --insecure it answers (401: AUTH)."""
    monkeypatch.setenv("STUB_KEY", SECRET)
    (tmp_path / "tls").mkdir()
    async with start_proxy(tmp_path / "tls", env={"TOKENOMICS_SERVER_TLS_ENABLED": "true"}) as up:
        (https,) = [url for url in up.server.urls if url.startswith("https://")]
        write_providers(work, stub_entry("stub", https))
        verified = await run_cli(cli, "provider", "test", "stub")
        insecure = await run_cli(cli, "provider", "test", "--insecure", "stub")
    assert parse_line(verified.out, "stub").group("status") == "FAIL"
    assert parse_line(insecure.out, "stub").group("status") == "AUTH"
    assert "not supported" not in insecure.err


def test_list_models_and_test_print_json(cli) -> None:
    assert cli("provider", "list", "--json").out == cli("provider", "list", "-o", "json").out
    one = json.loads(cli("provider", "models", "mock", "--json").out)
    assert one == {"mock": ["mock-gpt", "mock-claude", "mock-gemini"]}
    every = json.loads(cli("provider", "models", "--json").out)
    assert every["mock"] == one["mock"] and "openai" in every
    tested = cli("provider", "test", "mock", "nope", "--json")
    assert tested.code == 0, tested.err
    mock, nope = json.loads(tested.out)
    assert (mock["name"], mock["status"]) == ("mock", "OK") and mock["detail"].endswith("ms")
    assert nope == {"name": "nope", "status": "UNKNOWN", "detail": "(not in config)"}
