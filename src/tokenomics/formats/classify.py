"""Which adapter serves a request: by method and path (D5). Anything else is passthrough."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tokenomics.formats.anthropic import AnthropicCountTokens, AnthropicMessages
from tokenomics.formats.base import Adapter, Route
from tokenomics.formats.gemini import Gemini, GeminiCountTokens
from tokenomics.formats.openai import (
    OpenAIChat,
    OpenAICompletions,
    OpenAIEmbeddings,
    OpenAIResponses,
)

if TYPE_CHECKING:
    from tokenomics.domain.usage import Family

_GEMINI = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_SUFFIXES: tuple[tuple[str, Adapter], ...] = (
    ("/chat/completions", OpenAIChat()),
    ("/completions", OpenAICompletions()),
    ("/responses", OpenAIResponses()),
    ("/embeddings", OpenAIEmbeddings()),
    ("/v1/messages/count_tokens", AnthropicCountTokens()),
    ("/v1/messages", AnthropicMessages()),
)
_GEMINI_GENERATE, _GEMINI_COUNT = Gemini(), GeminiCountTokens()


def _passthrough_family(path: str, headers: dict[str, str]) -> Family:
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return "anthropic"
    if "x-goog-api-key" in headers or path.startswith(("/v1beta/models", "/v1/models/gemini")):
        return "gemini"
    return "openai"


def classify(method: str, path: str, headers: dict[str, str]) -> Route:
    """The route for a request; `headers` has lower-case names.

    A trailing slash does not escape enforcement (W-S6): LLM routes are matched, and sent
    upstream, without it.
    """
    if method == "POST":
        trimmed = path.rstrip("/") or path
        for suffix, adapter in _SUFFIXES:
            if trimmed.endswith(suffix):
                return Route(adapter, adapter.family, trimmed)
        match = _GEMINI.search(trimmed)
        if match:
            adapter = _GEMINI_COUNT if match.group(2) == "countTokens" else _GEMINI_GENERATE
            return Route(adapter, "gemini", trimmed, path_model=match.group(1))
    return Route(None, _passthrough_family(path, headers), path)
