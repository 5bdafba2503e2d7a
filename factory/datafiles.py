"""Reading a user's existing data: CSV, JSONL or parquet files, or a dataset folder.

Used wherever real data comes in (`--fill-gaps`; later the filter and report commands). Problems
become a `FactoryError` naming the path and what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from factory.errors import FactoryError

log = logging.getLogger(__name__)

_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def read_table(path: str | Path):  # -> datasets.Dataset
    """The rows of a file or dataset folder as a `datasets.Dataset` (its train split)."""
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise FactoryError("no such file or folder", path=path,
                           hint="give a CSV, JSONL or parquet file, or a dataset folder")
    try:
        if path.is_dir():
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                loaded = datasets.load_from_disk(str(path))
            else:
                loaded = datasets.load_dataset(str(path))
        else:
            builder = _BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise FactoryError(f"unsupported file type {path.suffix!r}", path=path,
                                   hint="use .csv, .jsonl or .parquet")
            loaded = datasets.load_dataset(builder, data_files=str(path))
    except FactoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        log.debug("reading %s failed", path, exc_info=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FactoryError(f"cannot read it ({first})", path=path,
                           hint="check the file's format") from None
    if isinstance(loaded, datasets.DatasetDict):
        split = "train" if "train" in loaded else next(iter(loaded))
        loaded = loaded[split]
    return loaded


def label_counts(path: str | Path, label_field: str) -> dict[str, int]:
    """How many rows of each label the file has."""
    table = read_table(path)
    if label_field not in table.column_names:
        raise FactoryError(f"no column {label_field!r} (columns: {', '.join(table.column_names)})",
                           path=path, field="--label-field", hint="name the label column")
    counts: dict[str, int] = {}
    for value in table[label_field]:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts
