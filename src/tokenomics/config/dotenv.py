"""`.env` files: `KEY=value` lines loaded into the environment without overriding what is set.

Order (`cli.md` §0.3): `./.env`, then `~/.tokenomics/.env`; so the real environment beats
`./.env`, which beats the home file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw[1:-1])
    return re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()  # unquoted: strip inline comments


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse dotenv text; comments, blank and malformed lines are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match:
            values[match.group(1)] = _unquote(match.group(2))
    return values


def load_dotenv_files(environ: MutableMapping[str, str], cwd: Path, home: Path | None) -> None:
    """Load `./.env` then `~/.tokenomics/.env`, never overriding a variable that is already set."""
    paths = [cwd / ".env"]
    if home is not None:
        paths.append(home / ".tokenomics" / ".env")
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for key, value in parse_dotenv(text).items():
            environ.setdefault(key, value)
