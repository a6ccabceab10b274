"""Results folders: writing records as cases finish, and reading them back as pandas.

A results folder holds

- ``records.jsonl``: one JSON record per line, appended and synced to disk as each
  case finishes (the crash-safe journal; the latest record of a case wins);
- ``records.parquet``: the same records as a table, rewritten atomically (a synced
  temporary file, then ``os.replace``), so the folder is valid at any moment, whatever
  interrupts the run;
- ``run.json``: the environment and the suite (see :mod:`odebench.runner._environment`).

Values are checked against the column types of :mod:`odebench._records` when written
and when read: a value that does not fit is a :class:`ResultsError` naming the file,
the line or record, and the column, never a half-written folder.

Nothing here imports torch or jax.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from ._cases import ParamsError, check_params
from ._errors import UsageError
from ._records import COLUMNS, INT64_MAX, INT64_MIN, KINDS, STATUSES, Record, value_problem

RECORDS_PARQUET = "records.parquet"
RECORDS_JOURNAL = "records.jsonl"
RUN_INFO = "run.json"


class ResultsError(UsageError):
    """A results folder or file that cannot be read or written (exit status 2).

    The message is one line naming the file and the line, column or key at fault.
    """

    def __init__(self, message: str) -> None:
        # Parser messages may span lines; the CLI promises one.
        text = " ".join(str(message).split())
        super().__init__(text if len(text) <= 400 else text[:397] + "...")


class ResultsWarning(UserWarning):
    """Something in a results folder was left out, such as the unfinished last line of a journal."""


# ---------------------------------------------------------------- typed frames


class _BadCell(Exception):
    def __init__(self, position: int, why: str) -> None:
        super().__init__(why)
        self.position, self.why = position, why


def records_to_frame(records: Iterable[Record | dict[str, Any]], source: str = "records"):
    """Build the typed DataFrame of records (columns in schema order).

    Raises :class:`ResultsError` naming ``source``, the record and the column when a
    value does not fit its column's type.
    """
    import pandas as pd

    rows = [r.to_dict() if isinstance(r, Record) else dict(r) for r in records]
    # object dtype keeps Python integers exact (pandas would pass them through float64).
    return _typed(pd.DataFrame(rows, dtype=object), source)


def _typed(frame, source: str = "records"):
    """The frame with every schema column present and typed; :class:`ResultsError` where a cell does not fit."""
    absent = {name for name in COLUMNS if name not in frame.columns}  # not a records file, maybe: see _runs
    for name in absent:
        frame[name] = None
    extra = [c for c in frame.columns if c not in KINDS]
    frame = frame[list(COLUMNS) + extra].reset_index(drop=True)
    for name in COLUMNS:
        try:
            frame[name] = _column(frame[name], KINDS[name])
            if name == "status" and name not in absent and not (known := frame[name].isin(STATUSES)).all():
                position = int((~known).to_numpy().argmax())
                why = f"{frame[name].iloc[position]!r} is not a status ({', '.join(STATUSES)})"
                raise _BadCell(position, why)
        except _BadCell as bad:
            case = frame["case_id"].iloc[bad.position]
            which = f"record {bad.position + 1}" + (f" (case {case})" if isinstance(case, str) and case else "")
            raise ResultsError(f"{source}: {which}: column {name}: {bad.why}") from None
    return frame


def _missing(v: Any) -> bool:
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if type(v) in (int, str):  # the common cases, without the ABC checks below
        return False
    return isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and math.isnan(v)


def _checked(col, kind: str) -> list[Any]:
    """The cells of an object column, each checked with :func:`value_problem` (missing ones as None)."""
    values = []
    for position, v in enumerate(col.tolist()):
        v = None if _missing(v) else v
        why = value_problem(kind, v)
        if why is not None:
            raise _BadCell(position, why)
        values.append(v)
    return values


def _column(col, kind: str):
    import numpy as np
    import pandas as pd
    from pandas.api import types

    if kind == "str":
        return col.where(col.notna(), "").astype(object).map(str)
    if kind == "floats":
        return pd.Series([_float_list(v, position) for position, v in enumerate(col.tolist())], index=col.index)
    if kind == "float":
        if types.is_float_dtype(col) or types.is_integer_dtype(col):
            return col.astype("float64")
        return pd.Series(
            [np.nan if v is None else float(v) for v in _checked(col, kind)], index=col.index, dtype="float64"
        )
    # kind == "int"
    if types.is_integer_dtype(col):
        values = col.dropna()
        too_big = values[(values > INT64_MAX) | (values < INT64_MIN)]
        if len(too_big):
            # outside int64, so value_problem names the problem (never None here)
            why = cast(str, value_problem(kind, int(too_big.iloc[0])))
            raise _BadCell(col.index.get_loc(too_big.index[0]), why)
        return col.astype("Int64")
    if types.is_float_dtype(col):
        x = col.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(x) & (~np.isfinite(x) | (x != np.trunc(x)) | (x >= 2.0**63) | (x < -(2.0**63)))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            # not finite, not whole or outside int64: value_problem names it (never None here)
            raise _BadCell(position, cast(str, value_problem(kind, float(x[position]))))
        return col.astype("Int64")
    return pd.Series(
        pd.array([None if v is None else int(v) for v in _checked(col, kind)], dtype="Int64"), index=col.index
    )


def _float_list(v: Any, position: int) -> list[float]:
    import numpy as np

    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, str):  # a list written to CSV as JSON text
        try:
            v = json.loads(v) if v.strip() else []
        except json.JSONDecodeError:
            raise _BadCell(position, f"expected a list of numbers, got {v[:40]!r}") from None
    elif _missing(v):
        return []
    why = value_problem("floats", v)
    if why is not None:
        raise _BadCell(position, why)
    return [float(x) for x in v]


# ---------------------------------------------------------------- writing


@contextmanager
def replaced_atomically(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file whose content replaces ``path`` in one rename once the block ends: written to
    a temporary file beside it and synced first; on any failure the temporary file is
    removed, ``path`` keeps its previous content and the error propagates."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet_atomic(records: Sequence[Record | dict[str, Any]], path: Path) -> None:
    """Write records to ``path`` so that readers never see a half-written file.

    The table goes to a temporary file beside ``path``, is synced to disk, and replaces
    ``path`` in one rename (the folder is synced too). On any failure the temporary file
    is removed and ``path`` keeps its previous content; the error is a
    :class:`ResultsError` naming ``path``.
    """
    path = Path(path)
    frame = records_to_frame(records, source=f"cannot write {path}")
    try:
        with replaced_atomically(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # pyarrow conversion errors
        raise ResultsError(f"cannot write {path}: {type(exc).__name__}: {exc}") from exc
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the data itself is synced
    finally:
        os.close(fd)


def append_journal(record: Record, path: Path) -> None:
    """Append one record to the JSON-lines journal and sync it to disk.

    A value that does not fit its column is refused before anything is written. A torn
    last line (a process killed mid-write) is first completed with its newline when it
    holds a whole record, or cut away when it does not, so that the new record stands
    on its own line.
    """
    path = Path(path)
    if problems := record.problems():
        column, why = problems[0]
        raise ResultsError(f"cannot append to {path}: case {record.case_id}: column {column}: {why}")
    line = (json.dumps(record.to_dict(), allow_nan=True) + "\n").encode("utf-8")
    created = not path.exists()
    try:
        with open(path, "a+b") as handle:
            _end_torn_line(handle, path)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise ResultsError(f"cannot append to {path}: {exc.strerror or exc}") from exc
    if created:
        _sync_folder(path.parent)


def _end_torn_line(handle, path: Path) -> None:
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    start = _last_line_start(handle, size)
    handle.seek(start)
    if isinstance(_parse_line(handle.read()), dict):
        handle.write(b"\n")  # a whole record; only its newline was lost
        return
    handle.truncate(start)
    warnings.warn(
        f"{path}: cut away an unfinished last line (byte {start} on) before appending", ResultsWarning, stacklevel=3
    )


def _last_line_start(handle, size: int, block: int = 1 << 16) -> int:
    end = size
    while end > 0:
        begin = max(0, end - block)
        handle.seek(begin)
        newline = handle.read(end - begin).rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        end = begin
    return 0


# ---------------------------------------------------------------- reading

_INVALID = object()


def _parse_line(raw: bytes) -> Any:
    """The JSON value of one journal line, or ``_INVALID``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _INVALID


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_journal(path: Path) -> list[Record]:
    """Every record of a journal, in order (a missing journal has none).

    A torn last line (no newline: the process died mid-write) is left out with a
    :class:`ResultsWarning`; a line anywhere else that is not a JSON object, or a value
    that does not fit its column, is a :class:`ResultsError` naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    records: list[Record] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        value = _parse_line(raw)
        if value is _INVALID:
            if number == len(lines):  # the last line, without its newline
                warnings.warn(
                    f"{path} line {number}: left out an unfinished last line (the run was stopped mid-write)",
                    ResultsWarning,
                    stacklevel=2,
                )
                continue
            raise ResultsError(f"{path} line {number}: not a complete JSON record (a torn or corrupt line)")
        if not isinstance(value, dict):
            raise ResultsError(f"{path} line {number}: expected a JSON object (one record), got a {_json_kind(value)}")
        record = Record.from_dict(value)
        if problems := record.problems():
            column, why = problems[0]
            raise ResultsError(f"{path} line {number}: column {column}: {why}")
        records.append(record)
    return records


def _latest(records: Iterable[Record]) -> list[Record]:
    """One record per case, the latest (a re-run case is journalled again), in order of first appearance."""
    return list({record.case_id: record for record in records}.values())


def _read_table(path: Path, reader):
    """The typed frame of the table file ``path``, read with ``reader`` (pandas' parquet or CSV reader)."""
    try:
        table = reader(path)
    except Exception as exc:  # whatever the parser raises, the file is not readable records
        raise ResultsError(f"cannot read records from {path}: {type(exc).__name__}: {exc}") from exc
    return _typed(table, str(path))


def _journal_frame(path: Path):
    return records_to_frame(_latest(read_journal(path)), str(path))


def _with_journal(frame, journal: list[Record], source: str):
    """The parquet table updated with the journal: cases finished or re-run after its last rewrite."""
    import numpy as np
    import pandas as pd

    latest = _latest(journal)
    if not latest:
        return frame
    fresh = records_to_frame(latest, source)
    newer = {r.case_id for r in latest}
    combined = pd.concat([frame[~frame["case_id"].isin(newer)], fresh], ignore_index=True)
    rank = {case: i for i, case in enumerate(dict.fromkeys([*frame["case_id"], *newer]))}
    order = np.argsort(combined["case_id"].map(rank).to_numpy(), kind="stable")
    return _typed(combined.iloc[order], source)


def _one(path: Path):
    import pandas as pd

    if path.is_dir():
        parquet, journal = path / RECORDS_PARQUET, path / RECORDS_JOURNAL
        if parquet.exists():
            return _with_journal(_read_table(parquet, pd.read_parquet), read_journal(journal), str(journal))
        if journal.exists():
            return _journal_frame(journal)
        raise ResultsError(f"{path} is not a results folder: it holds neither {RECORDS_PARQUET} nor {RECORDS_JOURNAL}")
    if path.suffix == ".parquet":
        return _read_table(path, pd.read_parquet)
    if path.suffix == ".jsonl":
        return _journal_frame(path)
    if path.suffix == ".csv":
        return _read_table(path, pd.read_csv)
    raise ResultsError(
        f"cannot read results from {path}: give a results folder, a records.parquet, a records.jsonl or a .csv file"
    )


def load_results(*paths: str | os.PathLike | Sequence[str | os.PathLike]):
    """Load one or more results folders (or records files) as one pandas DataFrame.

    Columns are those of :data:`odebench._records.COLUMNS`, typed: strings, float64,
    nullable Int64, and ``time_samples_s`` as lists of floats. Anything that cannot be
    read (a missing path, a corrupt file, a value that does not fit its column, a
    ``*_params`` cell that is not a JSON object) is a :class:`ResultsError` naming the file.
    """
    import pandas as pd

    flat: list[Path] = []
    for p in paths:
        if isinstance(p, (list, tuple)):
            flat.extend(Path(x) for x in p)
        else:
            flat.append(Path(cast("str | os.PathLike", p)))
    if not flat:
        raise ResultsError("load_results needs at least one results folder or records file")
    frames = []
    for path in flat:
        if not path.exists():
            raise ResultsError(f"no such results folder or file: {path}")
        frame = _one(path)
        try:
            check_params(frame, str(path))
        except ParamsError as exc:
            raise ResultsError(str(exc)) from None
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return _typed(pd.concat(frames, ignore_index=True))


# Keys of run.json that readers look into, with the JSON types they accept (null is always accepted).
RUN_INFO_KEYS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "suite": (dict, str),
    "suite_hash": (str,),
    "odebench_version": (str,),
    "git": (dict,),
    "python": (str,),
    "packages": (dict,),
    "cpu": (dict,),
    "gpu": (dict, str),
    "started_at": (str,),
    "finished_at": (str,),
    "resumed_at": (list,),
}
RUN_INFO_SUBKEYS: dict[tuple[str, str], tuple[type, ...]] = {
    ("suite", "name"): (str,),
    ("git", "commit"): (str,),
    ("git", "dirty"): (bool,),
    ("cpu", "model"): (str,),
    ("cpu", "cores"): (int,),
    ("gpu", "name"): (str,),
}
_TYPE_NAMES = {dict: "an object", str: "a string", list: "a list", bool: "true or false", int: "an integer"}


def _shape_problem(value: Any, allowed: tuple[type, ...]) -> str | None:
    if value is None or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)):
        return None
    wanted = " or ".join(_TYPE_NAMES[t] for t in allowed)
    return f"expected {wanted} (or null), got {json.dumps(value)[:60]}"


def load_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a results folder (an empty dict where there is none).

    Raises :class:`ResultsError` naming the file (and the key) when it cannot be read,
    is not a JSON object, or holds a key readers use with a value of the wrong type.
    """
    path = Path(path)
    info = (path if path.is_dir() else path.parent) / RUN_INFO
    if not info.exists():
        return {}
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read {info}: {getattr(exc, 'strerror', None) or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{info} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"{info}: expected a JSON object (the run's environment), got a {_json_kind(data)}")
    for key, allowed in RUN_INFO_KEYS.items():
        why = _shape_problem(data.get(key), allowed)
        if why:
            raise ResultsError(f"{info}: key {key}: {why}")
    for (key, sub), allowed in RUN_INFO_SUBKEYS.items():
        outer = data.get(key)
        why = _shape_problem(outer.get(sub), allowed) if isinstance(outer, dict) else None
        if why:
            raise ResultsError(f"{info}: key {key}.{sub}: {why}")
    return data
