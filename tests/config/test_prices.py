"""The bundled price table and per-model overrides."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from tokenomics.config.prices import EMBEDDED_FILE, load_prices
from tokenomics.domain.errors import ConfigError
from tokenomics.domain.pricing import Price

# Models of the built-in providers that must have a price (providers.embedded.yaml `models`).
PRICED_PROVIDERS = ("openai", "anthropic", "google_gemini", "mistral", "deepseek", "xai", "cohere")


def provider_models(name: str) -> list[str]:
    text = resources.files("tokenomics.config").joinpath("providers.embedded.yaml").read_text()
    return [str(model) for model in yaml.safe_load(text)[name]["models"]]


def test_bundled_table_loads_without_network_or_overrides() -> None:
    table = load_prices()
    assert len(table) > 50
    assert table.lookup("gpt-4o") == Price(2.50, 10.00, cached_input=1.25)


@pytest.mark.parametrize("provider", PRICED_PROVIDERS)
def test_every_model_of_the_main_providers_has_a_price(provider: str) -> None:
    table = load_prices()
    missing = [model for model in provider_models(provider) if table.lookup(model) is None]
    assert missing == []


def test_groq_llama_models_and_vertex_names_have_prices() -> None:
    table = load_prices()
    for model in ("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "google/gemini-2.5-flash"):
        assert table.lookup(model) is not None, model


def test_anthropic_cache_prices_follow_the_published_multipliers() -> None:
    table = load_prices()
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku"):
        price = table.lookup(model)
        assert price is not None
        assert price.cache_write == pytest.approx(price.input * 1.25), model
        assert price.cached_input == pytest.approx(price.input * 0.10, abs=0.006), model


def test_mock_models_are_explicitly_free() -> None:
    table = load_prices()
    for model in (*provider_models("mock"), "mock-anything"):
        assert table.lookup(model) == Price(0, 0), model


def test_every_bundled_entry_is_well_formed() -> None:
    text = resources.files("tokenomics.config").joinpath(EMBEDDED_FILE).read_text()
    assert "USD per million" in text.split("\n\n")[0]
    entries = yaml.safe_load(text)
    assert all({"input", "output"} <= set(entry) for entry in entries.values())


def test_override_changes_only_the_given_field() -> None:
    price = load_prices({"gpt-4o": {"output": 12.0}}).lookup("gpt-4o-2024-08-06")
    assert price == Price(2.50, 12.0, cached_input=1.25)


def test_override_of_input_moves_defaulted_cache_prices_too() -> None:
    price = load_prices({"GPT-4": {"input": 40}}).lookup("gpt-4")
    assert price == Price(40.0, 60.0)
    assert price is not None and price.cached_input == 40.0


def test_override_adds_a_new_model() -> None:
    table = load_prices({"my-finetune": {"input": 1, "output": 2, "cached_input": 0.5}})
    assert table.lookup("my-finetune") == Price(1, 2, cached_input=0.5)
    assert table.lookup("gpt-4o") is not None


def test_a_model_can_be_made_free() -> None:
    assert load_prices({"gpt-4o": {"input": 0, "output": 0, "cached_input": 0}}).lookup(
        "gpt-4o"
    ) == Price(0, 0)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"new-model": {"input": 1}}, ["'new-model'", "output"]),
        ({"gpt-4o": {"input": "cheap"}}, ["'gpt-4o'", "'input'", "'cheap'"]),
        ({"gpt-4o": {"output": -1}}, ["'gpt-4o'", "'output'"]),
        ({"gpt-4o": {"output": True}}, ["'gpt-4o'", "'output'"]),
        ({"gpt-4o": {"output": float("nan")}}, ["'gpt-4o'", "'output'"]),
        ({"gpt-4o": {"ouput": 1}}, ["'gpt-4o'", "'ouput'", "unknown field"]),
        ({"gpt-4o": 2.5}, ["'gpt-4o'", "must be a map"]),
    ],
)
def test_malformed_overrides_name_the_model_and_field(overrides: Any, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_prices(overrides)
    for word in words:
        assert word in str(caught.value)


def test_override_errors_say_where_the_value_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^providers\.yaml:7: "):
        load_prices({"gpt-4o": {"input": "x"}}, where=lambda key: "providers.yaml:7")


def test_overrides_that_are_not_a_map_are_rejected() -> None:
    with pytest.raises(ConfigError, match="map of model names"):
        load_prices(["gpt-4o"])  # type: ignore[arg-type]
