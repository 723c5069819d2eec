"""Provider configuration for end-to-end tests that span the API families."""

from __future__ import annotations


def family_config(url: str) -> str:
    """The three families' providers, pointed at the mock."""
    return f"""providers:
  openai:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
  anthropic:
    upstream_url: {url}
    api_key_env: ANTHROPIC_KEY
    auth_scheme: header
    auth_header: x-api-key
    headers:
      anthropic-version: "2023-06-01"
    formats: [anthropic, openai]
  gemini:
    upstream_url: {url}
    api_key_env: GOOGLE_KEY
    auth_scheme: header
    auth_header: x-goog-api-key
    chat_path: /v1beta/openai/chat/completions
    formats: [gemini, openai]
"""
