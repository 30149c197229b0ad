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

The record format, :func:`experiment_id` and the readers
(:func:`load_results`, :func:`load_records`) are :mod:`flops_fit.records`,
re-exported here; this module writes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from flops_fit.locking import FolderLock
from flops_fit.records import (
    BOOKKEEPING_COLUMNS,
    ID_RE,
    LOG_NAME,
    RUNS_NAME,
    STATUSES,
    TABLE_NAME,
    RunTable,
    check_record,
    experiment_id,
    json_default,
    load_floor,
    load_records,
    load_results,
    read_log,
)

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "LOG_NAME",
    "TABLE_NAME",
    "RUNS_NAME",
    "STATUSES",
    "ResultsStore",
    "experiment_id",
    "load_floor",
    "load_records",
    "load_results",
]


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
        self._table = RunTable()
        self._lock = FolderLock(self.output_dir)
        self._lock.acquire()  # before reading: what we read must not change under us
        try:
            _remove_stale_temp_files(self.output_dir)
            if self.log_path.exists():
                records, torn_at = read_log(self.log_path)
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
        if not isinstance(experiment_id, str) or not ID_RE.match(experiment_id):
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
        check_record(record, "ResultsStore.append")
        self._raise_background_error()
        self._lock.acquire()  # held since opening, unless close() gave it up
        line = json.dumps(record, separators=(",", ":"), default=json_default) + "\n"
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
