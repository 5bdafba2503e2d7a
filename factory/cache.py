"""The response cache: every teacher answer, persisted under its request key as it arrives.

SQLite in WAL mode, one commit per batch: a crash (even SIGKILL) loses at most the batch in flight,
and a rerun asks the teacher only for keys that are not here yet. Keys are canonical hashes of
everything that shapes an answer (see `request_key`), so a changed template or sampling parameter
misses the cache exactly where it should.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from factory.tasks import sha256_json
from factory.teachers.base import Teacher, TeachRequest, TeachResult

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(**parts: Any) -> str:
    """Hash the parts that shape an answer: messages, schema, teacher identity, sampling, ids."""
    return sha256_json(parts)


class ResponseCache:
    """`with ResponseCache(path) as cache: cache.get_many(keys); cache.put_many(results)`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, TeachResult]:
        keys = list(keys)
        found: dict[str, TeachResult] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT key, text, prompt_tokens, completion_tokens, finish_reason "
                f"FROM responses WHERE key IN ({marks})", chunk)
            for key, text, p, c, finish in rows:
                found[key] = TeachResult(key, text, p, c, finish, cached=True)
        return found

    def put_many(self, results: Iterable[TeachResult]) -> None:
        rows = [(r.key, r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason, time.time())
                for r in results if r.error is None]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def ask(teacher: Teacher, requests: list[TeachRequest], cache: ResponseCache,
        on_answer: Callable[[int, int], None] | None = None,
        seconds: dict[str, float] | None = None,
        allow: Callable[[list[TeachRequest]], int] | None = None) -> dict[str, TeachResult]:
    """Answers to `requests` by key: from the cache where it has them, the rest from the teacher
    in one batch, persisted before they are returned. `seconds` collects the time spent
    starting the teacher (`start`) and generating (`generate`). `allow(missing)` says how many
    of the missing requests may be sent (a spending cap); the others get no answer."""
    found = cache.get_many(r.key for r in requests)
    missing = [r for r in requests if r.key not in found]
    if allow is not None:
        missing = missing[:allow(missing)]
    if missing:
        log.info("teacher: sending %d requests (%d of %d cached)", len(missing), len(found),
                 len(requests))
        clock = time.monotonic()
        teacher.start()
        started = time.monotonic()
        # A teacher that answers in chunks (on Ray) has each chunk persisted as it lands.
        chunks = getattr(teacher, "generate_chunks", None)
        for fresh in (chunks(missing, on_answer) if chunks
                      else [list(teacher.generate(missing, on_answer))]):
            cache.put_many(fresh)
            found.update({r.key: r for r in fresh})
        if seconds is not None:
            seconds["start"] = seconds.get("start", 0.0) + started - clock
            seconds["generate"] = seconds.get("generate", 0.0) + time.monotonic() - started
    return found
