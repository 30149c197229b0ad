"""The on-disk record of a sweep: an append-only run log and a tidy table.

A sweep folder holds

- ``runs.jsonl``: one JSON object per finished experiment, appended and
  flushed as each finishes, then ``fsync``-ed. It is the source of truth: a
  killed sweep loses at most the run in flight (and a line torn mid-write is
  dropped).
- ``study_results.csv``: the tidy table (one row per experiment, the latest
  record wins when an experiment was run again), rewritten atomically (a
  temporary file in the same folder, then :func:`os.replace`) after each run.
- ``runs/<experiment_id>/``: whatever one run leaves behind.
- ``.lock``: held by the one process writing the folder (see
  :mod:`flops_fit.locking`); a second writer stops at once, naming the holder.

A store never destroys rows it did not write: a folder whose table holds
experiments the log does not (a copied ``study_results.csv``, say) is refused.

The fsync and the table rewrite run in a background thread (on a busy disk
they take milliseconds, as long as a short experiment); :meth:`ResultsStore.flush`
waits for them.

A record (one log line) is::

    {"experiment_id": "3f2a...", "config": {...}, "measurements": {...},
     "status": "ok" | "failed", "error": None | "ExcType: message",
     "started_at": "2024-...+00:00", "wall_time_s": 1.2, "device": "cpu",
     "versions": {"python": "3.11.7", "torch": "2.3.0", ...}}

and its table row is the config keys, then the measurements, then the
bookkeeping columns (:data:`BOOKKEEPING_COLUMNS`, then ``version_<name>``).
Non-finite floats are written as the ``NaN``/``Infinity`` tokens of Python's
:mod:`json`, which :func:`json.loads` and :func:`load_results` read back.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.locking import FolderLock

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "LOG_NAME",
    "TABLE_NAME",
    "RUNS_NAME",
    "ResultsStore",
    "experiment_id",
    "load_records",
    "load_results",
]

LOG_NAME = "runs.jsonl"
TABLE_NAME = "study_results.csv"
RUNS_NAME = "runs"
BOOKKEEPING_COLUMNS = ("experiment_id", "status", "error", "started_at", "wall_time_s", "device")
STATUSES = ("ok", "failed")
_RECORD_KEYS = ("experiment_id", "config", "measurements", "status")
_ID_RE = re.compile(r"^[0-9a-f]{12}$")


def _json_default(value: Any) -> Any:
    # numpy scalars (np.int64 from np.arange, np.bool_) are plain numbers to a user.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def experiment_id(config: Mapping[str, Any]) -> str:
    """Stable identifier of an experiment: a hash of its hyperparameters.

    Parameters
    ----------
    config : Mapping[str, Any]
        JSON-serialisable hyperparameters with string keys (numpy scalars
        count as the equal Python number).

    Returns
    -------
    str
        The first 12 hex digits of the SHA-256 of the config as compact JSON
        with sorted keys, so key order does not matter and the same config
        always gets the same id (48 bits: collisions are negligible below
        millions of experiments).

    Examples
    --------
    >>> experiment_id({"b": 2, "a": 1}) == experiment_id({"a": 1, "b": 2})
    True
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"Got config of type {type(config).__name__}, expected a dict")
    for key in config:
        if not isinstance(key, str):  # json would turn 1 into "1" and merge it with "1"
            raise TypeError(f"Got config key {key!r} of type {type(key).__name__}, expected str keys")
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError):
        for key, value in config.items():  # name the culprit
            try:
                json.dumps(value, default=_json_default)
            except (TypeError, ValueError):
                raise TypeError(
                    f"Config value {key}={value!r} of type {type(value).__name__} is not "
                    "JSON-serialisable; a config holds numbers, strings, bools and None"
                ) from None
        raise  # pragma: no cover - a value fails only inside the whole (circular reference)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Table row of one record: config, measurements, bookkeeping, versions."""
    row = {**record["config"], **record["measurements"]}
    for key in BOOKKEEPING_COLUMNS:
        row[key] = record.get(key)
    for name, version in (record.get("versions") or {}).items():
        row[f"version_{name}"] = version
    return row


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: record lacks {missing}; a record has {list(_RECORD_KEYS)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"{where}: got status={record['status']!r}, expected one of {list(STATUSES)}")


class _Table:
    """Latest record per experiment and the column order of the tidy table."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}  # id -> latest record, first-seen order
        self.rows: dict[str, dict[str, Any]] = {}
        # dicts as ordered sets: config keys, measurement keys, bookkeeping + versions
        self._keys: tuple[dict[str, None], dict[str, None], dict[str, None]] = ({}, {}, {})

    def add(self, record: Mapping[str, Any]) -> None:
        eid = record["experiment_id"]
        self.records[eid] = dict(record)
        self.rows[eid] = _flatten(record)
        config_keys, measurement_keys, book_keys = self._keys
        config_keys.update(dict.fromkeys(record["config"]))
        measurement_keys.update(dict.fromkeys(k for k in record["measurements"] if k not in config_keys))
        book_keys.update(dict.fromkeys(BOOKKEEPING_COLUMNS))
        book_keys.update(dict.fromkeys(f"version_{n}" for n in record.get("versions") or {}))

    @property
    def columns(self) -> list[str]:
        config_keys, measurement_keys, book_keys = self._keys
        seen = dict.fromkeys(config_keys)
        seen.update(dict.fromkeys(k for k in measurement_keys if k not in seen))
        seen.update(dict.fromkeys(k for k in book_keys if k not in seen))
        return list(seen)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()), columns=self.columns)


def _read_log(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Records of a run log and the byte offset of a torn last line (or None).

    A sweep killed while writing leaves at most one unparseable line, at the
    end; it is skipped with a warning. A bad line anywhere else is an error.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    offset = 0
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if any(rest.strip() for rest in lines[number:]):
                    raise ValueError(
                        f"{path}: line {number} is not valid JSON; only the last line may be "
                        "torn (by a crash while it was written)"
                    ) from None
                warnings.warn(
                    f"Ignoring a torn last line in {path} (a run interrupted while being recorded)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return records, offset
            _check_record(record, f"{path}: line {number}")
            records.append(record)
        offset += len(raw) + 1
    return records, None


def _write_csv_atomic(path: Path, columns: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    # The csv module, not pandas: this runs after every experiment and must stay cheap.
    # None is written as an empty cell, floats by repr (nan and inf read back with pandas).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the table is for sharing
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_stale_temp_files(folder: Path) -> None:
    # Left by a process killed while rewriting the table; only call with the folder's lock held.
    for tmp in folder.glob(f".{TABLE_NAME}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _check_table_is_ours(table_path: Path, logged: Iterable[str]) -> None:
    """Refuse a table holding rows the log does not: rewriting it would destroy them.

    A table the store wrote holds a subset of the log's experiments (it is
    rewritten after each append, so it may lag but never lead).
    """
    if not table_path.exists():
        return
    with open(table_path, newline="", encoding="utf-8") as f:
        ids = [row.get("experiment_id") for row in csv.DictReader(f)]
    known = set(logged)
    foreign = [i for i in ids if i not in known]
    if foreign:
        raise FileExistsError(
            f"Got output_dir='{table_path.parent}' whose {TABLE_NAME} holds {len(foreign)} of "
            f"{len(ids)} rows that its {LOG_NAME} does not record (a table copied or written "
            f"elsewhere?); a sweep would overwrite them. Expected a folder written by run_sweep, "
            "or a new one: choose another output_dir (load_results still reads this one)"
        )


class ResultsStore:
    """The results folder of one sweep, opened for appending.

    Parameters
    ----------
    output_dir : str or os.PathLike
        The sweep folder; created if missing. An existing ``runs.jsonl`` is
        read (a torn last line is cut off) so that a sweep can resume, and
        temporary tables left by a killed process are removed.

    Raises
    ------
    flops_fit.locking.FolderLockedError
        Another process (or another open store) is writing the folder.
    FileExistsError
        ``study_results.csv`` holds rows that ``runs.jsonl`` does not record.

    Notes
    -----
    :meth:`append` writes the log line to the operating system before it
    returns, so a killed process loses nothing appended. The ``fsync`` to
    disk and the table rewrite run in a background thread, so a slow disk does
    not hold up the next experiment; :meth:`flush` (and :meth:`close`) wait
    for both. One writer at a time: the store holds the folder's lock from
    opening to :meth:`close` (the runner writes only from the parent).
    Usable as a context manager (closes on exit).
    """

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise NotADirectoryError(f"Got output_dir='{self.output_dir}', which is a file, expected a folder")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.output_dir / LOG_NAME  # the run log, runs.jsonl
        self.table_path = self.output_dir / TABLE_NAME  # the tidy table, study_results.csv
        self._table = _Table()
        self._lock = FolderLock(self.output_dir)
        self._lock.acquire()  # before reading: what we read must not change under us
        try:
            _remove_stale_temp_files(self.output_dir)
            if self.log_path.exists():
                records, torn_at = _read_log(self.log_path)
                if torn_at is not None:
                    os.truncate(self.log_path, torn_at)  # so the next record starts on a fresh line
                for record in records:
                    self._table.add(record)
            _check_table_is_ours(self.table_path, self._table.records)
        except BaseException:
            self._lock.release()
            raise
        # Background sync: `_pending` says log lines await fsync and a table rewrite.
        self._cond = threading.Condition()
        self._pending = self._busy = self._closing = False
        self._error: BaseException | None = None
        self._syncer: threading.Thread | None = None
        self._log: io.TextIOWrapper | None = None

    def run_dir(self, experiment_id: str) -> Path:
        """The folder of one run, ``<output_dir>/runs/<experiment_id>/`` (created)."""
        if not isinstance(experiment_id, str) or not _ID_RE.match(experiment_id):
            raise ValueError(
                f"Got experiment_id={experiment_id!r}, expected 12 lowercase hex digits "
                "as made by experiment_id()"
            )
        path = self.output_dir / RUNS_NAME / experiment_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def append(self, record: Mapping[str, Any]) -> None:
        """Record one finished experiment.

        The line is appended and flushed to the OS now; its ``fsync`` and the
        atomic rewrite of ``study_results.csv`` follow in the background.

        Parameters
        ----------
        record : Mapping
            ``experiment_id``, ``config``, ``measurements``, ``status`` and the
            bookkeeping keys (see the module docstring); JSON-serialisable.
        """
        _check_record(record, "ResultsStore.append")
        self._raise_background_error()
        self._lock.acquire()  # held since opening, unless close() gave it up
        line = json.dumps(record, separators=(",", ":"), default=_json_default) + "\n"
        if self._log is None or self._log.closed:
            self._log = open(self.log_path, "a", encoding="utf-8")  # kept open; closed by close()
        self._log.write(line)
        self._log.flush()  # the OS has the line now: a killed process does not lose it
        with self._cond:
            self._table.add(json.loads(line))  # the table holds what the log holds
            self._pending = True
            if self._syncer is None or not self._syncer.is_alive():
                self._closing = False
                self._syncer = threading.Thread(target=self._sync_loop, name="results-sync", daemon=True)
                self._syncer.start()
            self._cond.notify_all()

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                self._pending, self._busy = False, True
                columns, rows = self._table.columns, list(self._table.rows.values())
            try:
                fd = os.open(self.log_path, os.O_RDONLY)
                try:
                    os.fsync(fd)  # covers every line written before this call
                finally:
                    os.close(fd)
                _write_csv_atomic(self.table_path, columns, rows)
            except Exception as exc:  # disk full, folder removed: raised by the next call
                self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _raise_background_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise OSError(f"Writing the results in '{self.output_dir}' failed: {error}") from error

    def flush(self) -> None:
        """Wait until every appended line is fsync-ed and the table rewritten."""
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()
        self._raise_background_error()

    def close(self) -> None:
        """Flush, then stop the background thread (a later append restarts it)."""
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            syncer = self._syncer
        if syncer is not None:
            syncer.join()
        if self._log is not None:
            self._log.close()
        self._lock.release()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write_table(self) -> None:
        """Rewrite ``study_results.csv`` from the log now (atomically), under the folder's lock."""
        with self._cond:
            columns, rows = self._table.columns, list(self._table.rows.values())
        if not rows:
            return
        held = self._lock.held
        self._lock.acquire()
        try:
            _write_csv_atomic(self.table_path, columns, rows)
        finally:
            if not held:  # after close(): give the folder back
                self._lock.release()

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        """The latest record of each experiment, by id, in first-run order."""
        return dict(self._table.records)

    @property
    def finished_ids(self) -> frozenset[str]:
        """Ids whose latest record has status ``ok``."""
        return frozenset(k for k, r in self._table.records.items() if r["status"] == "ok")

    @property
    def failed_ids(self) -> frozenset[str]:
        """Ids whose latest record has status ``failed``."""
        return frozenset(k for k, r in self._table.records.items() if r["status"] == "failed")

    def to_frame(self) -> pd.DataFrame:
        """The tidy table: one row per experiment (latest record)."""
        with self._cond:
            return self._table.frame()

    def __len__(self) -> int:
        return len(self._table.records)


def load_results(output_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Load the results table of a sweep folder.

    Parameters
    ----------
    output_dir : str or os.PathLike
        A folder written by :func:`flops_fit.runner.run_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per experiment (the latest record when one was run again):
        config columns, measurements, then bookkeeping. Read from
        ``runs.jsonl`` (a torn last line is skipped with a warning); from
        ``study_results.csv`` when only the table exists (e.g. a shared copy).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Results folder '{folder}' does not exist")
    log, table_path = folder / LOG_NAME, folder / TABLE_NAME
    if log.exists():
        table = _Table()
        for record in _read_log(log)[0]:
            table.add(record)
        return table.frame()
    if table_path.exists():
        return pd.read_csv(table_path)
    raise FileNotFoundError(f"No results in '{folder}': expected {LOG_NAME} or {TABLE_NAME} there")


def load_records(output_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The latest record of each experiment in a sweep folder's run log.

    Parameters
    ----------
    output_dir : str or os.PathLike
        The sweep folder, as for :func:`load_results`.

    Returns
    -------
    dict of str to dict
        Experiment id -> record (``config``, ``measurements``, ``status``, ...,
        see the module docstring), in first-run order; empty when the folder
        has no ``runs.jsonl`` (a table-only copy). Reads, never locks.
    """
    log = Path(output_dir) / LOG_NAME
    table = _Table()
    for record in _read_log(log)[0] if log.exists() else ():
        table.add(record)
    return table.records
