"""docs/CONFIGURATION.md is generated from the settings declarations and committed up to date."""

from __future__ import annotations

import re
from pathlib import Path

from tokenomics.config import reference
from tokenomics.config.loader import env_name, iter_keys

ROOT = Path(__file__).resolve().parents[2]
# Every key of the seed configuration reference (the contract), webhook fields included.
SEED_KEYS = re.findall(
    r"\S+",
    """
dir server.http_port server.https_port server.upstream_url server.tls.enabled
server.tls.auto_gen server.tls.cert_dir server.tls.cert_file server.tls.key_file admin.enabled
admin.auth.username admin.auth.password storage.db_path session.backend session.redis.addr
session.redis.password session.redis.db security.hash_key_env security.encryption_key_env
logging.level logging.format logging.request_body logging.response_body logging.hide_token_hash
logging.disable_request logging.proxy_log_file logging.file.enabled logging.file.level
logging.file.path events.webhooks[].url events.webhooks[].secret events.webhooks[].signing_key
events.webhooks[].events events.webhooks[].timeout events.webhooks[].insecure remote.url
remote.api_key remote.sync remote.insecure remote.webhook.enabled remote.webhook.path
remote.webhook.secret remote.webhook.signing_key remote.webhook.auto_register
remote.webhook.callback_url remote.webhook.insecure cli_maps default_provider ledger.enabled
ledger.memory ledger.event_ledger
""",
)


def rows(text: str) -> dict[str, list[str]]:
    """Key -> the other cells of its row in the generated table."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([a-z_.\[\]]+)` \| (.+) \|$", line)
        if match:
            found[match.group(1)] = match.group(2).split(" | ")
    return found


def test_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / reference.PATH).read_text(encoding="utf-8")
    assert committed == reference.configuration_reference(), (
        f"{reference.PATH} differs from config/settings.py: run python scripts/gen_docs.py "
        "and commit the result"
    )


def test_every_key_has_a_description_and_a_row_with_its_variable() -> None:
    table = rows(reference.configuration_reference())
    for key in iter_keys():
        assert key.doc, f"{key.name} has no description in config/settings.py"
        assert table[key.name][2] == f"`{env_name(key.name)}`"
        assert table[key.name][3] == key.doc.replace("|", "\\|")


def test_every_key_of_the_seed_reference_is_documented() -> None:
    table = rows(reference.configuration_reference())
    missing = [key for key in SEED_KEYS if key not in table]
    assert missing == []


def test_the_readme_links_the_references() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/CONFIGURATION.md)" in readme and "(docs/POLICY.md)" in readme
    assert (ROOT / "docs" / "POLICY.md").is_file()
