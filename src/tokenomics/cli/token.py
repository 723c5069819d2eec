"""`tokenomics token create|get|update|delete|list` (`cli.md` §6.4)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from cyclopts import App, Parameter

from tokenomics.cli.context import Context
from tokenomics.cli.output import is_terminal, print_json, print_table
from tokenomics.domain.durations import is_expired
from tokenomics.domain.errors import CommandError, NotFoundError
from tokenomics.domain.tokens import TOKEN_PREFIX
from tokenomics.services.token_ops import create_expiry, mint, update_expiry, validated_policy
from tokenomics.store.tokens import TokenRecord, TokenStore

app = App(name="token", help="Create, inspect, update and delete wrapper tokens.")
Ctx = Annotated[Context, Parameter(parse=False)]
Hash = Annotated[str, Parameter(help="The token hash, or a unique prefix of it.")]
Json = Annotated[bool, Parameter(help="Print JSON.", negative="")]


SHORT_HASH = 12  # characters of a hash in `token list` (`--wide` shows all 64)


def read_policy_arg(value: str) -> str:
    """`--policy` takes JSON text, `@path` for a file, or `-` for standard input."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                f"invalid policy: cannot read {path}: {exc.strerror or exc}"
            ) from None
    return value


def _validated_policy(value: str) -> str:
    return validated_policy(read_policy_arg(value))


def _not_found(message: str, value: str) -> CommandError:
    if value.startswith(TOKEN_PREFIX):
        message += " (--hash takes the hash printed at creation or its prefix, not the raw token)"
    return CommandError(message)


def full_hash(store: TokenStore, value: str) -> str:
    """The stored hash that is `value` or the only one starting with it (`NotFoundError` when
    none does; an ambiguous prefix is an error naming the candidates)."""
    found = store.hashes_starting_with(value) if value else []
    if value in found or len(found) == 1:
        return value if value in found else found[0]
    if not found:
        raise NotFoundError("token not found")
    shown = ", ".join(h[:SHORT_HASH] + "…" for h in found)
    raise CommandError(f'hash prefix "{value}" is ambiguous: {shown}; give more characters')


@contextmanager
def _existing_store(ctx: Context, missing: str, value: str) -> Iterator[tuple[TokenStore, str]]:
    """The store and the full hash for a command on one hash (or unique prefix); a missing
    store or hash is `missing`."""
    store = ctx.open_existing_store()
    if store is None:
        raise _not_found(missing, value)
    try:
        yield store, full_hash(store, value)
    except NotFoundError:
        raise _not_found(missing, value) from None
    finally:
        store.close()


def _status(record: TokenRecord, now: datetime) -> str:
    return "EXPIRED" if is_expired(record.expires_at, now) else "active"


def _as_json(record: TokenRecord, now: datetime) -> dict[str, Any]:
    policy: Any = None
    if record.policy_raw:
        try:
            policy = orjson.loads(record.policy_raw)
        except orjson.JSONDecodeError:
            policy = record.policy_raw
    out: dict[str, Any] = {
        "token_hash": record.token_hash,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "expired": is_expired(record.expires_at, now),
        "policy": policy,
    }
    if record.error:
        out["error"] = record.error
    return out


def _now() -> datetime:
    return datetime.now(UTC)


@app.command
def create(
    *,
    policy: Annotated[str, Parameter(help="Policy JSON, @file.json, or - for stdin.")],
    expires: Annotated[
        str,
        Parameter(help="Expiry: 24h, 7d, 30d, 1y, or an RFC 3339 time.", allow_leading_hyphen=True),
    ] = "",
    json: Json = False,
    ctx: Ctx,
) -> None:
    """Create a wrapper token bound to a policy. The raw token is shown once."""
    text = _validated_policy(policy)
    now = _now()
    expires_at = create_expiry(expires, now)
    key = ctx.hash_key()
    store = ctx.open_store()
    try:
        token, record = mint(store, key, text, expires_at, now)
    finally:
        store.close()
    token_hash = record.token_hash
    if json:
        print_json(ctx.stdout, {"token": token, **_as_json(record, now)})
        return
    lines = [
        "Token created successfully.",
        "WARNING: This token will only be shown once. Store it securely.",
        "",
        f"  Token:   {token}",
        f"  Hash:    {token_hash}",
    ]
    if expires_at:
        lines.append(f"  Expires: {expires_at}")
    ctx.stdout.write("\n".join([*lines, "", ""]))


@app.command
def get(
    *,
    hash: Hash,
    json: Json = False,
    ctx: Ctx,
) -> None:
    """Show one token: hash, dates and its policy."""
    with _existing_store(ctx, "Token not found.", hash) as (store, token_hash):
        record = store.get(token_hash)
    now = _now()
    if json:
        print_json(ctx.stdout, _as_json(record, now))
        return
    expires = f"{record.expires_at} ({_status(record, now)})" if record.expires_at else "never"
    try:
        policy = orjson.dumps(orjson.loads(record.policy_raw), option=orjson.OPT_INDENT_2).decode()
        policy_lines = ["Policy:", policy]
    except orjson.JSONDecodeError:
        policy_lines = [f"Policy:     {record.policy_raw}"]
    lines = [
        f"Hash:       {record.token_hash}",
        f"Created:    {record.created_at}",
        f"Expires:    {expires}",
    ]
    ctx.stdout.write("\n".join([*lines, *policy_lines, ""]))


@app.command
def update(
    *,
    hash: Hash,
    policy: Annotated[str, Parameter(help="New policy (replaces the whole policy).")] = "",
    expires: Annotated[
        str, Parameter(help="New expiry, or 'clear' to remove it.", allow_leading_hyphen=True)
    ] = "",
    json: Json = False,
    ctx: Ctx,
) -> None:
    """Replace a token's policy and/or change its expiry."""
    if not policy and not expires:
        raise CommandError("must provide --policy and/or --expires")
    text = _validated_policy(policy) if policy else None
    now = _now()
    new_expiry = update_expiry(expires, now)
    with _existing_store(ctx, "update token: token not found", hash) as (store, token_hash):
        record = store.update(token_hash, text, new_expiry)
    if json:
        print_json(ctx.stdout, _as_json(record, now))
    else:
        ctx.stdout.write("Token updated.\n")


@app.command
def delete(
    *,
    hash: Hash,
    json: Json = False,
    ctx: Ctx,
) -> None:
    """Delete a token; requests with it are refused from then on."""
    with _existing_store(ctx, "delete token: token not found", hash) as (store, token_hash):
        store.delete(token_hash)
    if json:
        print_json(ctx.stdout, {"token_hash": token_hash, "deleted": True})
    else:
        ctx.stdout.write("Token deleted.\n")


def _block(record: TokenRecord, now: datetime) -> list[str]:
    lines = [f"Hash:       {record.token_hash}", f"Created:    {record.created_at}"]
    if record.expires_at:
        lines.append(f"Expires:    {record.expires_at} ({_status(record, now)})")
    p = record.policy
    if p is None:
        return [*lines, f"Error:      {record.error}", "---"]
    lines.append(f"Key Env:    {p.base_key_env}")
    lines += [f"Upstream:   {p.upstream_url}"] if p.upstream_url else []
    lines += [f"Model:      {p.model}"] if p.model else []
    lines += [f"Model Regex: {p.model_regex}"] if p.model_regex else []
    lines += [f"Max Tokens: {p.max_tokens}"] if p.max_tokens > 0 else []
    lines += [f"Max Cost:   ${p.max_cost_usd:g}"] if p.max_cost_usd > 0 else []
    return [*lines, f"Prompts:    {len(p.prompts)}", f"Rules:      {len(p.rules)}", "---"]


WIDE_COLUMNS = ("HASH", "CREATED", "EXPIRES", "STATUS", "KEY ENV", "MODEL", "MAX TOKENS")
NARROW_COLUMNS = ("HASH", "CREATED", "EXPIRES", "STATUS", "MODEL", "MAX TOKENS")


def _row(record: TokenRecord, now: datetime, *, wide: bool) -> list[str]:
    """One table row; narrow rows (80 columns) have a short hash, dates without time and no
    key variable, and cut a long model selector."""
    p = record.policy
    created, expires = record.created_at, record.expires_at or "never"
    if not wide:
        created, expires = created[:10], expires[:10]
    if p is None:
        status, key_env, model, limit = "UNREADABLE", record.error, "", ""
    else:
        limit = str(p.max_tokens) if p.max_tokens > 0 else "-"
        model = p.model or p.model_regex or ", ".join(name for name, _ in p.providers) or "any"
        status = _status(record, now) if record.expires_at else "active"
        key_env = p.base_key_env
    if wide:
        return [record.token_hash, created, expires, status, key_env, model, limit]
    model = model if len(model) <= 16 else model[:15] + "…"
    return [record.token_hash[:SHORT_HASH], created, expires, status, model, limit]


@app.command(name="list")
def list_tokens(
    *,
    json: Json = False,
    wide: Annotated[
        bool, Parameter(help="Full hashes and times, and the key variable.", negative="")
    ] = False,
    ctx: Ctx,
) -> None:
    """List every token (expired ones too) by hash; the table fits 80 columns unless --wide.

    Hashes are shown by their first 12 characters: any unique prefix works for --hash."""
    store = ctx.open_existing_store()
    records: list[TokenRecord] = []
    if store is not None:
        try:
            records = store.list()
        finally:
            store.close()
    now = _now()
    if json:
        print_json(ctx.stdout, [_as_json(r, now) for r in records])
    elif not records:
        ctx.stdout.write("No tokens found.\n")
    elif is_terminal(ctx.stdout):
        columns = WIDE_COLUMNS if wide else NARROW_COLUMNS
        rows = [_row(r, now, wide=wide) for r in records]
        print_table(ctx.stdout, f"{len(records)} tokens", columns, rows, width=None if wide else 80)
    else:
        ctx.stdout.write("\n".join(line for r in records for line in _block(r, now)) + "\n")
    broken = [r for r in records if r.error]
    if broken:
        raise CommandError(
            f"{len(broken)} of {len(records)} tokens could not be read: {broken[0].error}"
        )
