"""Results folders: writing records as cases finish, and reading them back as pandas.

A results folder holds

- ``records.jsonl``: one JSON record per finished case, appended and flushed as the
  case finishes (the crash-safe journal);
- ``records.parquet``: the same records as a table, rewritten atomically after each
  case (write to a temporary file, then ``os.replace``), so the folder is valid at
  any moment, whatever interrupts the run;
- ``run.json``: the environment and the suite (see :mod:`odebench.runner._environment`).

Nothing here imports torch or jax.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._errors import UsageError
from ._records import COLUMNS, KINDS, Record

RECORDS_PARQUET = "records.parquet"
RECORDS_JOURNAL = "records.jsonl"
RUN_INFO = "run.json"


class ResultsError(UsageError):
    """A results folder or file that cannot be read; the message says why (exit status 2)."""


def records_to_frame(records: Iterable[Record | dict[str, Any]]):
    """Build the typed DataFrame of records (columns in schema order)."""
    import pandas as pd

    rows = [r.to_dict() if isinstance(r, Record) else dict(r) for r in records]
    frame = pd.DataFrame(rows)
    return _typed(frame)


def _typed(frame):
    import numpy as np
    import pandas as pd

    for name in COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    extra = [c for c in frame.columns if c not in KINDS]
    frame = frame[list(COLUMNS) + extra].copy()
    for name in COLUMNS:
        kind = KINDS[name]
        col = frame[name]
        if kind == "str":
            frame[name] = col.where(col.notna(), "").astype(object).map(str)
        elif kind == "float":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "int":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif kind == "floats":
            frame[name] = col.map(lambda v: [float(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else [])
    return frame.reset_index(drop=True)


def write_parquet_atomic(records: Sequence[Record | dict[str, Any]], path: Path) -> None:
    """Write records to ``path`` so that readers never see a half-written file."""
    frame = records_to_frame(records)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def append_journal(record: Record, path: Path) -> None:
    """Append one record to the JSON-lines journal and flush it to disk."""
    line = json.dumps(record.to_dict(), allow_nan=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_journal(path: Path) -> list[Record]:
    """Records from a journal; a torn last line (the process died mid-write) is ignored."""
    records: list[Record] = []
    if not path.exists():
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(Record.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
    return records


def _one(path: Path):
    import pandas as pd

    if path.is_dir():
        parquet, journal = path / RECORDS_PARQUET, path / RECORDS_JOURNAL
        if parquet.exists():
            frame = pd.read_parquet(parquet)
            if journal.exists():
                # The journal may hold cases finished after the last parquet rewrite.
                extra = [r for r in read_journal(journal) if r.case_id not in set(frame["case_id"])]
                if extra:
                    frame = pd.concat([frame, records_to_frame(extra)], ignore_index=True)
            return _typed(frame)
        if journal.exists():
            return records_to_frame(read_journal(journal))
        raise ResultsError(f"{path} is not a results folder: it holds neither {RECORDS_PARQUET} nor {RECORDS_JOURNAL}")
    if path.suffix == ".parquet":
        return _typed(pd.read_parquet(path))
    if path.suffix == ".jsonl":
        return records_to_frame(read_journal(path))
    if path.suffix == ".csv":
        return _typed(pd.read_csv(path))
    raise ResultsError(
        f"cannot read results from {path}: give a results folder, a records.parquet, a records.jsonl or a .csv file"
    )


def load_results(*paths: str | os.PathLike | Sequence[str | os.PathLike]):
    """Load one or more results folders (or records files) as one pandas DataFrame.

    Columns are those of :data:`odebench._records.COLUMNS`, typed: strings, float64,
    nullable Int64, and ``time_samples_s`` as lists of floats.
    """
    import pandas as pd

    flat: list[Path] = []
    for p in paths:
        if isinstance(p, (list, tuple)):
            flat.extend(Path(x) for x in p)
        else:
            flat.append(Path(p))
    if not flat:
        raise ResultsError("load_results needs at least one results folder or records file")
    frames = []
    for path in flat:
        if not path.exists():
            raise ResultsError(f"no such results folder or file: {path}")
        try:
            frames.append(_one(path))
        except ResultsError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            # pyarrow and pandas parser errors: say which file could not be read.
            raise ResultsError(f"cannot read records from {path}: {type(exc).__name__}: {exc}") from exc
    if len(frames) == 1:
        return frames[0]
    return _typed(pd.concat(frames, ignore_index=True))


def load_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a results folder (an empty dict where there is none)."""
    path = Path(path)
    info = (path if path.is_dir() else path.parent) / RUN_INFO
    if not info.exists():
        return {}
    try:
        return json.loads(info.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{info} is not valid JSON: {exc}") from exc
