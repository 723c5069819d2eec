"""The provider catalogue: embedded defaults, providers.yaml lookup, inline overrides, errors."""

from __future__ import annotations

import re
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tokenomics.config.providers import (
    EMBEDDED_FILE,
    ProviderConfig,
    find_providers_file,
    load_providers,
)
from tokenomics.domain.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

EMBEDDED_NAMES = (
    *("openai", "anthropic", "azure_openai", "google_gemini", "vertex_ai", "mistral", "cohere"),
    *("groq", "together", "fireworks", "perplexity", "deepseek", "xai", "openrouter", "ollama"),
    *("vllm", "litellm", "bedrock", "replicate", "nvidia_nim", "sambanova", "cerebras", "ai21"),
    *("moonshot", "anyscale", "localai", "lmstudio"),
)
ALIASES = ("generic", "azure", "gemini")


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / "providers" / name for name in ("cwd", "home", "data")}
    for path in out.values():
        path.mkdir(parents=True)
    return out


def load(
    dirs: dict[str, Path], inline: dict[str, Any] | None = None, **kw: Any
) -> dict[str, ProviderConfig]:
    return load_providers(
        cwd=dirs["cwd"], home=dirs["home"], data_dir=dirs["data"], inline=inline or {}, **kw
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# ── the shipped catalogue ────────────────────────────────────────────────────────────────────


def test_embedded_and_root_files_are_byte_identical() -> None:
    embedded = resources.files("tokenomics.config").joinpath(EMBEDDED_FILE).read_bytes()
    assert (REPO_ROOT / "providers.yaml").read_bytes() == embedded


def test_scenario_82_defaults(dirs: dict[str, Path]) -> None:
    providers = load(dirs)
    assert set(EMBEDDED_NAMES) | set(ALIASES) | {"mock"} == set(providers)
    assert list(providers) == sorted(providers)
    anthropic = providers["anthropic"]
    assert anthropic.auth_scheme == "header"
    assert anthropic.auth_header == "x-api-key"
    assert anthropic.headers == {"anthropic-version": "2023-06-01"}
    assert anthropic.formats == ("anthropic", "openai")
    assert anthropic.chat_path == ""
    assert providers["gemini"].api_key_env == "GEMINI_API_KEY"
    assert providers["google_gemini"].api_key_env == "GOOGLE_API_KEY"


def test_every_default_is_usable(dirs: dict[str, Path]) -> None:
    for cfg in load(dirs).values():
        assert cfg.upstream_url, cfg.name
        assert not cfg.upstream_url.endswith(("/v1", "/")), cfg.name
        assert cfg.models, cfg.name
        assert cfg.base_url_env or cfg.name == "mock"
        assert (cfg.auth_scheme == "none") == (cfg.api_key_env == ""), cfg.name


def test_fixed_urls_keep_base_paths_and_drop_v1(dirs: dict[str, Path]) -> None:
    urls = {name: cfg.upstream_url for name, cfg in load(dirs).items()}
    assert urls["groq"] == "https://api.groq.com/openai"
    assert urls["fireworks"] == "https://api.fireworks.ai/inference"
    assert urls["openrouter"] == "https://openrouter.ai/api"
    assert urls["ai21"] == "https://api.ai21.com/studio"
    assert urls["sambanova"] == "https://api.sambanova.ai"
    assert urls["cerebras"] == "https://api.cerebras.ai"
    assert urls["moonshot"] == "https://api.moonshot.ai"
    assert urls["anyscale"] == "https://api.endpoints.anyscale.com"
    assert urls["cohere"] == "https://api.cohere.com/compatibility"


def test_azure_api_version_is_a_query_parameter(dirs: dict[str, Path]) -> None:
    providers = load(dirs)
    for name in ("azure_openai", "azure"):
        cfg = providers[name]
        assert cfg.query == {"api-version": "2024-10-21"}
        assert cfg.headers == {}
        assert (cfg.auth_scheme, cfg.auth_header) == ("header", "api-key")
    assert providers["azure"] == ProviderConfig(
        **{**_fields(providers["azure_openai"]), "name": "azure"}
    )


def _fields(cfg: ProviderConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in cfg.__slots__}


def test_gemini_ollama_vertex_and_aliases(dirs: dict[str, Path]) -> None:
    providers = load(dirs)
    for name in ("google_gemini", "gemini"):
        cfg = providers[name]
        assert (cfg.auth_scheme, cfg.auth_header) == ("header", "x-goog-api-key")
        assert cfg.formats == ("gemini", "openai")
        assert cfg.chat_path == "/v1beta/openai/chat/completions"
    ollama = providers["ollama"]
    assert (ollama.api_key_env, ollama.auth_scheme, ollama.chat_path) == ("", "none", "")
    assert ollama.formats == ("openai",)
    vertex = providers["vertex_ai"]
    assert vertex.upstream_url == "https://{location}-aiplatform.googleapis.com"
    assert vertex.chat_path == (
        "/v1/projects/{project}/locations/{location}/endpoints/openapi/chat/completions"
    )
    assert providers["cohere"].chat_path == ""
    generic = providers["generic"]
    assert generic.base_url_env == "GENERIC_BASE_URL"
    assert _fields(generic) | {"name": "openai", "base_url_env": "OPENAI_BASE_URL"} == _fields(
        providers["openai"]
    )


def test_mock_provider(dirs: dict[str, Path]) -> None:
    mock = load(dirs)["mock"]
    assert mock.upstream_url == "mock://tokenomics"
    assert (mock.api_key_env, mock.auth_scheme) == ("", "none")
    assert mock.formats == ("openai", "anthropic", "gemini")


# ── merging ──────────────────────────────────────────────────────────────────────────────────


def test_scenario_83_whole_entry_replacement(dirs: dict[str, Path]) -> None:
    write(
        dirs["cwd"] / "providers.yaml",
        """
        anthropic:
          upstream_url: https://claude.example.com
          api_key_env: MY_CLAUDE_KEY
        newco:
          upstream_url: https://api.newco.ai/
          api_key_env: NEWCO_KEY
        """,
    )
    providers = load(dirs)
    assert providers["anthropic"] == ProviderConfig(
        name="anthropic", upstream_url="https://claude.example.com", api_key_env="MY_CLAUDE_KEY"
    )
    assert providers["anthropic"].auth_scheme == "bearer"
    assert providers["newco"].upstream_url == "https://api.newco.ai"
    assert (
        providers["openai"]
        == load_providers(cwd=dirs["data"], home=None, data_dir=dirs["data"], inline={})["openai"]
    )

    inline = {"anthropic": {"upstream_url": "https://inline.example.com", "api_key_env": "K"}}
    anthropic = load(dirs, inline)["anthropic"]
    assert anthropic.upstream_url == "https://inline.example.com"
    assert anthropic.headers == {}


def test_providers_file_lookup_order(dirs: dict[str, Path]) -> None:
    def entry(url: str) -> str:
        return f"openai:\n  upstream_url: {url}\n  api_key_env: K\n"

    home_file = write(dirs["home"] / ".tokenomics" / "providers.yaml", entry("https://home.x"))
    assert load(dirs)["openai"].upstream_url == "https://home.x"
    data_file = write(dirs["data"] / "providers.yaml", "groq:\n  upstream_url: https://data.x\n")
    providers = load(dirs)
    assert providers["groq"].upstream_url == "https://data.x"
    assert providers["openai"].upstream_url == "https://api.openai.com"  # home file not read
    cwd_file = write(dirs["cwd"] / "providers.yaml", entry("https://cwd.x"))
    providers = load(dirs)
    assert providers["openai"].upstream_url == "https://cwd.x"
    assert providers["groq"].upstream_url == "https://api.groq.com/openai"
    assert find_providers_file(cwd=dirs["cwd"], home=dirs["home"], data_dir=dirs["data"]) == (
        cwd_file
    )
    cwd_file.unlink()
    data_file.unlink()
    assert find_providers_file(cwd=dirs["cwd"], home=dirs["home"], data_dir=dirs["data"]) == (
        home_file
    )
    assert find_providers_file(cwd=dirs["cwd"], home=None, data_dir=dirs["data"]) is None


def test_auth_scheme_defaults(dirs: dict[str, Path]) -> None:
    inline = {
        "keyless": {"upstream_url": "http://localhost:9000"},
        "empty_key": {"upstream_url": "http://localhost:9000", "api_key_env": ""},
        "explicit": {"api_key_env": "", "auth_scheme": "Header", "auth_header": ""},
        "keyed": {"api_key_env": "K", "auth_scheme": None, "chat_path": None},
    }
    providers = load(dirs, inline)
    assert providers["keyless"].auth_scheme == "none"
    assert providers["empty_key"].auth_scheme == "none"
    assert providers["explicit"].auth_scheme == "header"
    assert providers["explicit"].auth_header == "Authorization"
    assert (providers["keyed"].auth_scheme, providers["keyed"].chat_path) == ("bearer", "")


def test_scalar_values_become_strings(dirs: dict[str, Path]) -> None:
    write(
        dirs["cwd"] / "providers.yaml",
        """
        x:
          upstream_url: https://x.example
          api_key_env: K
          query: {api-version: 2024-10-21, n: 3}
          formats: [gemini, OpenAI, gemini]
        """,
    )
    cfg = load(dirs)["x"]
    assert cfg.query == {"api-version": "2024-10-21", "n": "3"}
    assert cfg.formats == ("gemini", "openai")


# ── errors ───────────────────────────────────────────────────────────────────────────────────

FILE_ERRORS = [
    (
        "x:\n  api_key_env: K\n  auth_scheme: basic\n",
        3,
        'provider "x": auth_scheme "basic" must be one of bearer, header, query, none',
    ),
    (
        "x:\n  upstream_url: https://x\n  colour: red\n",
        3,
        'provider "x": unknown field "colour"; known fields: upstream_url, api_key_env, '
        "base_url_env, auth_header, auth_scheme, headers, query, models, chat_path, formats",
    ),
    (
        "x:\n  upstream_url: ftp://x.example\n",
        2,
        'provider "x": upstream_url "ftp://x.example" must be an http:// or https:// URL '
        "(or mock://…)",
    ),
    ("x:\n  upstream_url: api.x.example\n", 2, 'provider "x": upstream_url "api.x.example" must'),
    ("x:\n  api_key_env: [A, B]\n", 2, 'provider "x": api_key_env ["A", "B"] must be a string'),
    ("x:\n  upstream_url: true\n", 2, 'provider "x": upstream_url true must be a string'),
    ("x:\n  headers: [a]\n", 2, 'provider "x": headers ["a"] must be a map of names to strings'),
    (
        "x:\n  headers:\n    X-Team: {id: 1}\n",
        3,
        'provider "x": headers.X-Team {"id": 1} must be a string',
    ),
    (
        "x:\n  headers:\n    bad name: v\n",
        3,
        'provider "x": headers.bad name "bad name" is not a valid HTTP header name',
    ),
    ("x:\n  auth_header: 'x y'\n", 2, 'provider "x": auth_header "x y" is not a valid HTTP header'),
    ("x:\n  query: nope\n", 2, 'provider "x": query "nope" must be a map of names to strings'),
    ("x:\n  models: gpt-4o\n", 2, 'provider "x": models "gpt-4o" must be a list'),
    (
        "x:\n  formats:\n    - openai\n    - soap\n",
        4,
        'provider "x": formats[1] "soap" must be one of openai, anthropic, gemini',
    ),
    (
        "x:\n  formats: []\n",
        2,
        'provider "x": formats [] must list at least one of openai, anthropic, gemini',
    ),
    ("x:\n  chat_path: v1/chat\n", 2, 'provider "x": chat_path "v1/chat" must start with "/"'),
    ("a:\n  api_key_env: K\nx:\n", 3, 'provider "x": must be a map of fields, not null'),
    ("x: https://x.example\n", 1, 'provider "x": must be a map of fields, not "https://x.example"'),
]


@pytest.mark.parametrize(("text", "line", "message"), FILE_ERRORS)
def test_file_errors_name_provider_field_value_and_line(
    dirs: dict[str, Path], text: str, line: int, message: str
) -> None:
    path = write(dirs["cwd"] / "providers.yaml", text)
    with pytest.raises(ConfigError) as err:
        load(dirs)
    assert str(err.value).startswith(f"{path}:{line}: {message}")


def test_malformed_providers_file_fails_loudly(dirs: dict[str, Path]) -> None:
    path = write(dirs["home"] / ".tokenomics" / "providers.yaml", "openai:\n  upstream_url: [\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        load(dirs)


def test_providers_file_must_be_a_map(dirs: dict[str, Path]) -> None:
    path = write(dirs["data"] / "providers.yaml", "- openai\n- anthropic\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: expected a mapping"):
        load(dirs)


def test_inline_errors_use_config_where(dirs: dict[str, Path]) -> None:
    asked: list[str] = []

    def where(key: str) -> str:
        asked.append(key)
        return "/etc/config.yaml:40"

    inline = {"x": {"api_key_env": "K", "auth_scheme": "basic"}}
    with pytest.raises(ConfigError) as err:
        load(dirs, inline, config_where=where)
    assert str(err.value) == (
        '/etc/config.yaml:40: provider "x": auth_scheme "basic" must be one of bearer, header, '
        "query, none"
    )
    assert asked == ["providers.x.auth_scheme"]


def test_inline_errors_without_config_where(dirs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r'^config\.yaml: provider "x": unknown field "url"'):
        load(dirs, {"x": {"url": "https://x"}})


def test_prices_per_model_are_validated(tmp_path: Path) -> None:
    from tokenomics.config.providers import parse_provider

    ok = parse_provider("x", {"prices": {"m": {"input": 1, "output": 2.5}}}, lambda key: "f:1")
    assert ok.prices == {"m": {"input": 1.0, "output": 2.5}}
    for bad, fragment in [
        ({"m": {"input": -1}}, "prices.m.input -1 must be a number"),
        ({"m": {"inputs": 1}}, "prices.m.inputs 1 is not a price field"),
        ({"m": 3}, "prices.m 3 must be a map"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            parse_provider("x", {"prices": bad}, lambda key: "f:1")
