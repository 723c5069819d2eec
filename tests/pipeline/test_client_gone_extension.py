"""The request's life and our HTTP server name the client-gone scope extension alike: were
they to drift apart, every request would silently fall back to a watcher task."""

from tokenomics.pipeline import run
from tokenomics.services import http_request


def test_the_pipeline_reads_the_extension_our_server_sets() -> None:
    assert run.CLIENT_GONE == http_request.CLIENT_GONE
