"""Routes of POST paths are remembered (the same few on every request); what is remembered
answers like a fresh classification, and passthrough still follows the headers."""

from __future__ import annotations

import pytest

from tokenomics.formats import classify as classify_module
from tokenomics.formats.classify import classify

PATHS = [
    "/v1/chat/completions",
    "/v1/chat/completions/",
    "/openai/deployments/my-gpt/chat/completions",
    "/v1beta/models/gemini-2.5-pro:generateContent",
    "/v1beta/models/gemini-2.5-pro:countTokens",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
]


@pytest.mark.parametrize("path", PATHS)
def test_a_remembered_route_is_the_one_classification_gives(path: str) -> None:
    first = classify("POST", path, {})
    again = classify("POST", path, {"anthropic-version": "2023-06-01"})
    assert again == first
    assert first.adapter is not None
    assert (first.path, first.path_model) == (path.rstrip("/"), first.path_model)


def test_passthrough_routes_follow_each_requests_headers() -> None:
    for _ in range(2):
        assert classify("POST", "/v1/files", {}).family == "openai"
        assert classify("POST", "/v1/files", {"anthropic-version": "x"}).family == "anthropic"
        assert classify("POST", "/v1/files", {"x-goog-api-key": "k"}).family == "gemini"
        assert classify("GET", "/v1/chat/completions", {}).adapter is None


def test_remembered_routes_stay_bounded_whatever_paths_clients_send() -> None:
    for n in range(classify_module.ROUTES_LIMIT + 10):
        assert classify("POST", f"/x{n}/v1/chat/completions", {}).path_model == ""
    assert classify("POST", "/openai/deployments/d1/chat/completions", {}).path_model == "d1"
    assert classify_module.ROUTES_LIMIT >= len(classify_module._ROUTES) > 0
