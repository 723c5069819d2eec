"""Which adapter serves a request: by method and path (D5). Anything else is passthrough.

A model named in the path is the request's model: Gemini's `models/{model}:action` (and
`tunedModels/…`), and Azure's `deployments/{deployment}/…` (Azure serves the deployment,
whatever the body's `model` says).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from tokenomics.domain.errors import BadPath, RefusedPath
from tokenomics.domain.memo import remember
from tokenomics.formats.anthropic import AnthropicCountTokens, AnthropicMessages
from tokenomics.formats.base import Adapter, Route
from tokenomics.formats.gemini import Gemini, GeminiCountTokens
from tokenomics.formats.openai import (
    OpenAIChat,
    OpenAICompletions,
    OpenAIEmbeddings,
    OpenAIResponses,
)
from tokenomics.formats.paths import canonical_path

if TYPE_CHECKING:
    from tokenomics.domain.usage import Family

_GEMINI = re.compile(
    r"/(?:models|tunedModels)/([^/:]+):(generateContent|streamGenerateContent|countTokens)$"
)
_SUFFIXES: tuple[tuple[str, Adapter], ...] = (
    ("/chat/completions", OpenAIChat()),
    ("/completions", OpenAICompletions()),
    ("/responses", OpenAIResponses()),
    ("/embeddings", OpenAIEmbeddings()),
    ("/v1/messages/count_tokens", AnthropicCountTokens()),
    ("/v1/messages", AnthropicMessages()),
)
_GEMINI_GENERATE, _GEMINI_COUNT = Gemini(), GeminiCountTokens()
# A model in a path: an Azure deployment, or a Gemini (tuned) model followed by any action.
_PATH_MODEL = re.compile(r"/deployments/([^/]+)/|/(?:models|tunedModels)/([^/:]+):")


def _passthrough_family(path: str, headers: dict[str, str]) -> Family:
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return "anthropic"
    if "x-goog-api-key" in headers or path.startswith(("/v1beta/models", "/v1/models/gemini")):
        return "gemini"
    return "openai"


def _with_path_model(route: Route, path: str) -> Route:
    match = _PATH_MODEL.search(path)
    if match is None:
        return route
    group = 1 if match.group(1) is not None else 2
    return Route(route.adapter, route.family, path, match.group(group), match.start(group))


# The routes of POST paths an adapter serves, by path: the same few on every request. Routes
# are immutable; a passthrough route is not kept (its family depends on the headers).
_ROUTES: dict[str, Route] = {}
ROUTES_LIMIT = 1024


def classify(method: str, path: str, headers: dict[str, str]) -> Route:
    """The route for a decoded request path; `headers` has lower-case names.

    A trailing slash does not escape enforcement (W-S6): LLM routes are matched, and sent
    upstream, without it.
    """
    if method == "POST":
        route = _ROUTES.get(path)
        if route is not None:
            return route
        route = _llm_route(path.rstrip("/") or path)
        if route is not None:
            return remember(_ROUTES, path, route, ROUTES_LIMIT)
    return _with_path_model(Route(None, _passthrough_family(path, headers), path), path)


def _llm_route(trimmed: str) -> Route | None:
    """The route of a POST to `trimmed` when an adapter serves it."""
    for suffix, adapter in _SUFFIXES:
        if trimmed.endswith(suffix):
            return _with_path_model(Route(adapter, adapter.family, trimmed), trimmed)
    match = _GEMINI.search(trimmed)
    if match:
        adapter = _GEMINI_COUNT if match.group(2) == "countTokens" else _GEMINI_GENERATE
        return Route(adapter, "gemini", trimmed, match.group(1), match.start(1))
    return None


def route_request(method: str, raw_path: str, headers: dict[str, str]) -> Route:
    """The route for a path as the client sent it (percent-encoded): decoded once by
    `canonical_path`, whose result is both classified and sent upstream. Raises `RefusedPath`,
    shaped for the family the path looks like, when the path is ambiguous."""
    try:
        path = canonical_path(raw_path)
    except BadPath as exc:
        looks_like = re.split(r"[?#;]", unquote(raw_path))[0]
        family = classify(method, looks_like, headers).family
        raise RefusedPath(exc.message, family) from None
    return classify(method, path, headers)
