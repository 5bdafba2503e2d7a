"""Where the packaged task configs and prompt templates are.

In a wheel they sit inside the package (`factory/_data/{configs,prompts}`); in a source checkout
they are the repository's top-level `configs/` and `prompts/` folders.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    installed = _PACKAGE / "_data"
    if (installed / "configs").is_dir():
        return installed
    return _PACKAGE.parent


def configs_dir() -> Path:
    return data_root() / "configs"


def prompts_dir() -> Path:
    return data_root() / "prompts"


def builtin_tasks_dir() -> Path:
    return configs_dir() / "tasks"


def factory_home() -> Path:
    """Per-user state: converted models. `FACTORY_HOME` overrides the XDG cache location."""
    if os.environ.get("FACTORY_HOME"):
        return Path(os.environ["FACTORY_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "factory"
