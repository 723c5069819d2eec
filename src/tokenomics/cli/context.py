"""What every command gets: the global flags, the environment, and lazy access to settings."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tokenomics.config.loader import load_settings
from tokenomics.config.settings import Settings
from tokenomics.domain.tokens import HashKey
from tokenomics.store.encryption import Cipher
from tokenomics.store.tokens import TokenStore


@dataclass
class Context:
    """One CLI invocation. Commands read settings through it, never from globals."""

    config: str = ""
    db: str = ""
    dir: str = ""
    debug: bool = False
    environ: MutableMapping[str, str] = field(default_factory=lambda: os.environ)
    cwd: Path = field(default_factory=Path.cwd)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _settings: Settings | None = None

    @property
    def home(self) -> Path | None:
        home = self.environ.get("HOME", "")
        return Path(home) if home else None

    def settings(self, **command_flags: tuple[Any, str]) -> Settings:
        """Settings from flags > env > file > defaults, loaded once per invocation.

        `command_flags` maps a dotted key (with dots as `__`) to (value, flag as typed), for
        commands whose own flags override configuration keys.
        """
        if self._settings is None:
            flags: dict[str, tuple[Any, str]] = {}
            if self.dir:
                flags["dir"] = (self.dir, "--dir")
            if self.db:
                flags["storage.db_path"] = (self.db, "--db")
            flags.update({k.replace("__", "."): v for k, v in command_flags.items()})
            self._settings = load_settings(
                cwd=self.cwd,
                home=self.home,
                environ=self.environ,
                config_path=self.config,
                flags=flags,
            )
        return self._settings

    def hash_key(self) -> HashKey:
        return HashKey.from_env(dict(self.environ), self.settings().security.hash_key_env)

    def cipher(self) -> Cipher | None:
        secret = self.environ.get(self.settings().security.encryption_key_env, "")
        return Cipher.from_secret(secret) if secret else None

    def open_store(self) -> TokenStore:
        """Open (creating if needed) the token store at `storage.db_path`."""
        settings = self.settings()
        return TokenStore.open(
            Path(settings.storage.db_path), self.cipher(), settings.security.encryption_key_env
        )

    def open_existing_store(self) -> TokenStore | None:
        """The token store if it exists; read-only commands never create one."""
        if not Path(self.settings().storage.db_path).exists():
            return None
        return self.open_store()
