"""Where the configuration comes from, and the copies rvcd ships.

Search order (the first that applies wins): `--config FILE`; `$RVCD_CONFIG`;
`$XDG_CONFIG_HOME/rvcd/config.yaml` (default `~/.config/rvcd/config.yaml`) if it exists;
the default packaged with rvcd (the WORLD engine, no model needed). The packaged files
are the repository's `configs/`, installed as the package data `rvcd.configs`, so an
installed wheel finds them as a checkout does.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGED = ("default.yaml", "rvc-example.yaml", "streaming.yaml")
"""Configurations shipped with rvcd."""


def packaged(name: str = "default.yaml") -> Path:
    """The path of a configuration shipped with rvcd."""
    if name not in PACKAGED:
        raise ValueError(f"no packaged configuration {name!r} (there are: {', '.join(PACKAGED)})")
    return Path(str(resources.files("rvcd.configs").joinpath(name)))


def user_config() -> Path:
    """`$XDG_CONFIG_HOME/rvcd/config.yaml`, by default `~/.config/rvcd/config.yaml`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rvcd" / "config.yaml"


def find_config(explicit: Path | None) -> tuple[Path, str]:
    """The configuration to use and why (for the log): see the module docstring."""
    if explicit is not None:
        return explicit, "--config"
    if os.environ.get("RVCD_CONFIG"):
        return Path(os.environ["RVCD_CONFIG"]), "$RVCD_CONFIG"
    user = user_config()
    if user.is_file():
        return user, "the user configuration"
    return packaged(), "the packaged default"
