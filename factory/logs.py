"""Logging: one logger per module under `factory`, and a run log file in the output folder.

While a run writes its log, the process's stderr (file descriptor 2, inherited by vLLM's worker
processes) goes to that file too, so engine chatter and tracebacks land in the log and the terminal
shows only the CLI's own lines.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET = ["vllm", "transformers", "datasets", "httpx", "httpx2", "openai", "urllib3", "filelock",
          "torch"]


def quiet_third_parties() -> None:
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Library progress bars (dataset loading, weight loading) would interleave with ours.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def run_log(path: Path, *, capture_stderr: bool = True) -> Iterator[None]:
    """Log to `path` (DEBUG for factory, INFO for the rest) for the duration of a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("factory").setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    saved = _redirect_stderr(path) if capture_stderr else None
    try:
        yield
    finally:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        root.removeHandler(handler)
        handler.close()


def _redirect_stderr(path: Path) -> int:
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    return saved
