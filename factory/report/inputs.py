"""The report's inputs: the synthetic rows of a dataset folder, the real reference and test sets,
and the task's seed examples, each as texts (and labels) read from one column each.

Column defaults come from the folder's manifest: the task's student prompt field is the text, its
first label the label. Every problem is a `FactoryError` naming the file and the column.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.errors import FactoryError

log = logging.getLogger(__name__)


@dataclass
class TextSet:
    """Rows of one input: texts, labels (None when the input has none) and row ids."""

    name: str
    source: str
    texts: list[str]
    labels: list[str] | None
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Columns:
    text: str
    label: str | None
    task: Any | None  # factory.tasks.Task, when the manifest names one that loads
    seeds_file: str | None = None


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FactoryError(f"cannot read the manifest ({exc})", path=path,
                           hint="rerun the command that wrote the folder") from None


def columns(manifest: dict[str, Any] | None, text_field: str | None,
            label_field: str | None, seeds: Path | None) -> Columns:
    """Text and label columns: the options, else the task's, else `text` and `label`."""
    task, seeds_file = _task_of(manifest, seeds)
    text, label = "text", "label"
    if task is not None:
        prompt = task.config.student.prompt
        text = prompt[0] if len(prompt) == 1 else task.config.text_fields[0]
        label = task.config.slice_field
    return Columns(text_field or text, label_field or label, task, seeds_file)


def _task_of(manifest: dict[str, Any] | None,
             seeds: Path | None) -> tuple[Any | None, str | None]:
    """The task that made the folder and its seed file, if the manifest lets us load it."""
    from factory.tasks import load_task, seeds_file_of

    if not manifest or not manifest.get("task"):
        return None, None
    name, seeds_option = manifest["task"], None
    try:
        words = shlex.split(manifest.get("command") or "")
    except ValueError:
        words = []
    for flag, value in zip(words, words[1:]):
        if flag in ("--task", "-t"):
            name = value
        elif flag == "--seeds":
            seeds_option = value
    chosen = str(seeds) if seeds else seeds_option
    try:
        task = load_task(name, seeds_path=chosen, require_seeds=False)
    except FactoryError as exc:
        if seeds:  # the user named the seed file: its problems are theirs to fix
            raise
        log.info("report: the task %r did not load (%s); no seed comparison", name, exc)
        return None, None
    found = seeds_file_of(task.config, task.path, chosen, required=False)
    return task, str(found) if found else None


def read_synthetic(folder: Path, manifest: dict[str, Any] | None, cols: Columns) -> TextSet:
    """The accepted rows of a factory folder (its train parquet), or any dataset folder."""
    if not folder.is_dir():
        raise FactoryError("not a folder", path=folder, field="DIR",
                           hint="give the dataset folder a distill or filter run wrote")
    train = (manifest or {}).get("files", {}).get("train")
    source = folder / train if train and (folder / train).is_file() else folder
    return read_set("synthetic", source, cols.text, cols.label)


def read_set(name: str, path: Path, text_field: str, label_field: str | None) -> TextSet:
    """Texts and labels of a CSV, JSONL or parquet file or a dataset folder."""
    table = _table(path)
    available = table.column_names
    for field, option in ((text_field, "--text-field"), (label_field, "--label-field")):
        if field is not None and field not in available:
            raise FactoryError(f"no column {field!r} (columns: {', '.join(available)})",
                               path=path, field=option, hint=f"name the {name} data's column")
    texts = ["" if t is None else str(t) for t in table[text_field]]
    labels = [str(v) for v in table[label_field]] if label_field else None
    ids = [str(i) for i in table["id"]] if "id" in available else [
        f"{name}-{i}" for i in range(len(texts))]
    if not texts:
        raise FactoryError("has no rows", path=path, hint=f"give {name} data with rows")
    return TextSet(name, str(path), texts, labels, ids)


def _table(path: Path) -> Any:
    from factory.datafiles import read_table

    if path.suffix == ".parquet" and path.is_file():
        import pyarrow.parquet as pq

        try:
            return _Columns(pq.read_table(path).to_pylist())
        except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's to fix
            raise FactoryError(f"cannot read it ({exc})", path=path) from None
    return read_table(path)


class _Columns:
    """The two things `read_set` needs of a table: `column_names` and `table[column]`."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.column_names = list(rows[0]) if rows else []

    def __getitem__(self, column: str) -> list[Any]:
        return [row.get(column) for row in self.rows]


def seed_set(task: Any | None, text_field: str, source: str | None = None) -> TextSet | None:
    """The task's seed examples as a text set (None without a task or seeds)."""
    if task is None or not task.seeds:
        return None
    rows = [s for s in task.seeds if isinstance(s.record.get(text_field), str)]
    if not rows:
        return None
    label = task.config.slice_field
    return TextSet("seeds", source or str(task.path), [s.record[text_field] for s in rows],
                   [str(s.record.get(label)) for s in rows], [s.id for s in rows])
