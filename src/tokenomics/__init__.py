"""Tokenomics: a self-hosted gateway for LLM APIs with wrapper tokens and policies."""

from importlib import metadata

try:
    __version__ = metadata.version("tokenomics")
except metadata.PackageNotFoundError:  # running from a bare source tree
    __version__ = "0.0.0+dev"
