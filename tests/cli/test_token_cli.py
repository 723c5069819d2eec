"""`cli.md` §6.4 and §10 scenarios 1-18: the `token` commands, run in-process."""

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import HASH_KEY, Result

from tokenomics.domain.tokens import TOKEN_RE
from tokenomics.store.tokens import TokenStore

POLICY = '{"base_key_env":"OPENAI_API_KEY"}'


def created(result: Result) -> tuple[str, str]:
    assert result.code == 0, result.err
    token = re.search(r"^  Token:   (\S+)$", result.out, re.M)
    token_hash = re.search(r"^  Hash:    (\S+)$", result.out, re.M)
    assert token and token_hash
    return token.group(1), token_hash.group(1)


def test_bare_command_lists_the_commands(cli) -> None:
    result = cli()
    assert result.code == 0
    assert "token" in result.out and "version" in result.out


def test_unknown_command_is_an_error(cli) -> None:
    result = cli("foo")
    assert result.code == 1
    assert 'unknown command "foo"' in result.err


def test_create_prints_token_once_and_its_hmac_hash(cli) -> None:
    result = cli("token", "create", "--policy", POLICY)
    assert result.out.startswith(
        "Token created successfully.\nWARNING: This token will only be shown once. Store it securely.\n\n"
    )
    token, token_hash = created(result)
    assert TOKEN_RE.fullmatch(token)
    assert token_hash == hmac.new(HASH_KEY.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert "Expires:" not in result.out
    listing = cli("token", "list")
    assert token_hash in listing.out and token not in listing.out


def test_create_without_hash_key_refuses_and_writes_nothing(cli, monkeypatch, home: Path) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    result = cli("token", "create", "--policy", POLICY)
    assert result.code == 1
    assert result.err.startswith("Error: the token hash key is not set: export TOKENOMICS_HASH_KEY")
    assert not (home / ".tokenomics").exists()


def test_hash_key_variable_is_configurable(cli, monkeypatch) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    monkeypatch.setenv("TOKENOMICS_SECURITY_HASH_KEY_ENV", "MY_HASH")
    monkeypatch.setenv("MY_HASH", "other")
    token, token_hash = created(cli("token", "create", "--policy", POLICY))
    assert token_hash == hmac.new(b"other", token.encode(), hashlib.sha256).hexdigest()


def test_expiry_forms(cli) -> None:
    now = datetime.now(UTC)
    week = cli("token", "create", "--policy", POLICY, "--expires", "7d")
    stamp = re.search(r"^  Expires: (\S+)$", week.out, re.M)
    assert stamp
    moment = datetime.fromisoformat(stamp.group(1).replace("Z", "+00:00"))
    assert abs(moment - (now + timedelta(days=7))) < timedelta(seconds=5)
    year = cli("token", "create", "--policy", POLICY, "--expires", "1y")
    assert f"  Expires: {now.year + 1}-" in year.out


@pytest.mark.parametrize(
    ("expires", "message"),
    [("garbage", "invalid expiration"), ("-1h", "expiration must be positive"),
     ("clear", "create token: invalid expires_at")],
)  # fmt: skip
def test_bad_expiry_fails_and_writes_nothing(cli, home: Path, expires: str, message: str) -> None:
    result = cli("token", "create", "--policy", POLICY, "--expires", expires)
    assert result.code == 1 and message in result.err
    assert not (home / ".tokenomics" / "tokenomics.db").exists()


@pytest.mark.parametrize(
    ("policy", "message"),
    [("{}", "invalid policy: base_key_env is required (or at least one provider)"),
     ("{nope", "invalid policy: invalid policy JSON"),
     ('{"base_key_env":"K","rules":[{"action":"zap","pattern":"x"}]}',
      'invalid policy: global rule 0: invalid rule action "zap"')],
)  # fmt: skip
def test_invalid_policy_is_one_sentence(cli, home: Path, policy: str, message: str) -> None:
    result = cli("token", "create", "--policy", policy)
    assert result.code == 1
    assert result.err.startswith(f"Error: {message}")
    assert result.err.count("\n") == 1
    assert not (home / ".tokenomics").exists()


def test_policy_from_file_and_missing_file(cli, work: Path) -> None:
    (work / "policy.json").write_text('{"base_key_env":"K","max_tokens":42}')
    _, token_hash = created(cli("token", "create", "--policy", "@policy.json"))
    shown = cli("token", "get", "--hash", token_hash, "--json")
    assert json.loads(shown.out)["policy"] == {"base_key_env": "K", "max_tokens": 42}
    missing = cli("token", "create", "--policy", "@nope.json")
    assert missing.code == 1 and "invalid policy: cannot read" in missing.err


def test_get_shows_dates_and_indented_policy(cli) -> None:
    _, token_hash = created(cli("token", "create", "--policy", '{"model":"m","base_key_env":"K"}'))
    result = cli("token", "get", "--hash", token_hash)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"Hash:       {token_hash}"
    assert re.fullmatch(r"Created:    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[1])
    assert lines[2] == "Expires:    never"
    assert lines[3:] == ["Policy:", "{", '  "model": "m",', '  "base_key_env": "K"', "}"]


def test_get_unknown_hash_fails(cli) -> None:
    result = cli("token", "get", "--hash", "0" * 64)
    assert result.code == 1 and "Token not found." in result.err
    raw = cli("token", "get", "--hash", "tkn_00000000-0000-4000-8000-000000000000")
    assert "not the raw token" in raw.err


def test_update_needs_something_to_change(cli) -> None:
    result = cli("token", "update", "--hash", "0" * 64)
    assert result.code == 1 and "must provide --policy and/or --expires" in result.err


def test_update_expiry_and_clear(cli) -> None:
    _, token_hash = created(cli("token", "create", "--policy", POLICY, "--expires", "24h"))
    assert "(active)" in cli("token", "get", "--hash", token_hash).out
    cleared = cli("token", "update", "--hash", token_hash, "--expires", "clear")
    assert cleared.out == "Token updated.\n"
    assert "Expires:    never" in cli("token", "get", "--hash", token_hash).out
    past = cli("token", "update", "--hash", token_hash, "--expires", "2020-01-01T00:00:00Z")
    assert past.code == 0
    assert (
        "Expires:    2020-01-01T00:00:00Z (EXPIRED)"
        in cli("token", "get", "--hash", token_hash).out
    )


def test_update_policy_replaces_whole_policy_and_validates(cli) -> None:
    _, token_hash = created(cli("token", "create", "--policy", POLICY))
    bad = cli("token", "update", "--hash", token_hash, "--policy", '{"max_tokens":5}')
    assert bad.code == 1 and "base_key_env is required" in bad.err
    good = cli(
        "token", "update", "--hash", token_hash, "--policy", '{"base_key_env":"X"}', "--json"
    )
    assert json.loads(good.out)["policy"] == {"base_key_env": "X"}


def test_update_and_delete_unknown_hash(cli) -> None:
    created(cli("token", "create", "--policy", POLICY))
    update = cli("token", "update", "--hash", "0" * 64, "--expires", "1d")
    assert update.code == 1 and update.err.startswith("Error: update token: token not found")
    delete = cli("token", "delete", "--hash", "nope")
    assert delete.code == 1 and delete.err.startswith("Error: delete token: token not found")


def test_delete_on_an_empty_store(cli) -> None:
    result = cli("token", "delete", "--hash", "nope")
    assert result.code == 1
    assert result.err == "Error: delete token: token not found\n"


def test_list_blocks_and_json(cli) -> None:
    assert cli("token", "list").out == "No tokens found.\n"
    assert json.loads(cli("token", "list", "--json").out) == []
    _, plain = created(cli("token", "create", "--policy", POLICY))
    _, capped = created(cli("token", "create", "--policy", '{"base_key_env":"K","max_tokens":9}'))
    result = cli("token", "list")
    blocks = result.out.strip().split("---")[:-1]
    assert len(blocks) == 2 and result.out.endswith("---\n")
    by_hash = {re.search(r"Hash:\s+(\S+)", b).group(1): b for b in blocks}  # type: ignore[union-attr]
    assert "Max Tokens: 9" in by_hash[capped] and "Max Tokens" not in by_hash[plain]
    assert "Key Env:    OPENAI_API_KEY" in by_hash[plain]
    assert "Prompts:    0" in by_hash[plain] and "Rules:      0" in by_hash[plain]
    listed = json.loads(cli("token", "list", "--json").out)
    assert sorted(item["token_hash"] for item in listed) == sorted([plain, capped])


def test_delete_removes_the_token(cli) -> None:
    _, token_hash = created(cli("token", "create", "--policy", POLICY))
    assert cli("token", "delete", "--hash", token_hash).out == "Token deleted.\n"
    assert cli("token", "list").out == "No tokens found.\n"


def test_read_only_commands_create_nothing(cli, home: Path, work: Path) -> None:
    cli("token", "list")
    cli("token", "get", "--hash", "0" * 64)
    cli("version")
    assert not (home / ".tokenomics").exists() and list(work.iterdir()) == []


def test_global_flags_move_the_store(cli, tmp_path: Path) -> None:
    _, in_dir = created(cli("--dir", str(tmp_path / "d"), "token", "create", "--policy", POLICY))
    assert (tmp_path / "d" / "tokenomics.db").exists()
    _, in_db = created(cli("token", "create", "--policy", POLICY, "--db", str(tmp_path / "x.db")))
    assert (tmp_path / "x.db").exists()
    assert in_dir in cli("--dir", str(tmp_path / "d"), "token", "list").out
    assert in_db in cli("--db", str(tmp_path / "x.db"), "token", "list").out


def test_missing_config_file_is_an_error(cli) -> None:
    result = cli("--config", "/nonexistent.yaml", "token", "list")
    assert result.code == 1 and "load config:" in result.err


def test_encrypted_store_without_key_fails_clearly(cli, monkeypatch) -> None:
    monkeypatch.setenv("TOKENOMICS_ENCRYPTION_KEY", "s3cret")
    _, token_hash = created(cli("token", "create", "--policy", POLICY))
    assert cli("token", "get", "--hash", token_hash).code == 0
    monkeypatch.delenv("TOKENOMICS_ENCRYPTION_KEY")
    result = cli("token", "get", "--hash", token_hash)
    assert result.code == 1
    assert "no encryption key configured: set TOKENOMICS_ENCRYPTION_KEY" in result.err
    listing = cli("token", "list")
    assert listing.code == 1 and "1 of 1 tokens could not be read" in listing.err


def test_dotenv_supplies_the_hash_key(cli, monkeypatch, work: Path) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    (work / ".env").write_text("TOKENOMICS_HASH_KEY=from-dotenv\n")
    token, token_hash = created(cli("token", "create", "--policy", POLICY))
    assert token_hash == hmac.new(b"from-dotenv", token.encode(), hashlib.sha256).hexdigest()


def test_version_layout(cli) -> None:
    lines = cli("version").out.splitlines()
    assert re.fullmatch(r"tokenomics \S+", lines[0])
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  commit",
        "  built",
        "  python",
        "  os/arch",
    ]
    assert cli("--version").out.splitlines() == lines


def test_list_on_a_terminal_is_a_table(cli, monkeypatch) -> None:
    _, token_hash = created(
        cli("token", "create", "--policy", '{"base_key_env":"K","max_tokens":9}')
    )
    monkeypatch.setattr("tokenomics.cli.token.is_terminal", lambda out: True)
    table = cli("token", "list").out
    assert "HASH" in table and "MAX TOKENS" in table and "1 tokens" in table
    assert token_hash[:12] in table and "Key Env:" not in table


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_list_table_fits_80_columns_and_wide_shows_everything(cli, monkeypatch) -> None:
    policy = '{"base_key_env":"OPENAI_API_KEY","model_regex":"^(gpt-4o|gpt-4.1|o3)-.*$"}'
    _, token_hash = created(cli("token", "create", "--policy", policy, "--expires", "30d"))
    monkeypatch.setattr("tokenomics.cli.token.is_terminal", lambda out: True)
    narrow = ANSI.sub("", cli("token", "list").out)
    assert max(len(line) for line in narrow.splitlines()) <= 80, narrow
    assert token_hash[:12] in narrow and token_hash not in narrow
    wide = ANSI.sub("", cli("token", "list", "--wide").out)
    assert token_hash in wide and "OPENAI_API_KEY" in wide


def store_with(home: Path, *hashes: str) -> None:
    store = TokenStore.open(home / ".tokenomics" / "tokenomics.db")
    try:
        for token_hash in hashes:
            store.create(token_hash, POLICY, None, "2026-01-01T00:00:00Z")
    finally:
        store.close()


def test_hash_commands_take_a_unique_prefix(cli, home: Path) -> None:
    first, second = "ab12" + "0" * 60, "ab34" + "0" * 60
    store_with(home, first, second)
    shown = cli("token", "get", "--hash", "ab12", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["token_hash"] == first
    updated = cli("token", "update", "--hash=ab34", "--expires", "7d")
    assert updated.code == 0, updated.err
    deleted = cli("token", "delete", "--hash", "ab3", "--json")
    assert json.loads(deleted.out) == {"token_hash": second, "deleted": True}


def test_an_ambiguous_or_unknown_prefix_is_an_error(cli, home: Path) -> None:
    store_with(home, "ab12" + "0" * 60, "ab34" + "0" * 60)
    ambiguous = cli("token", "delete", "--hash", "ab")
    assert ambiguous.code == 1
    assert ambiguous.err.startswith('Error: hash prefix "ab" is ambiguous: ab1200000000…, ab34')
    assert cli("token", "list", "--json").out.count("token_hash") == 2  # nothing deleted
    unknown = cli("token", "get", "--hash", "ff")
    assert (unknown.code, unknown.err) == (1, "Error: Token not found.\n")
