"""What a sweep folder records and how to read it: one record per run, the tidy table, the run log.

A record (one line of ``runs.jsonl``) is::

    {"experiment_id": "3f2a...", "config": {...}, "measurements": {...},
     "status": "ok" | "failed", "error": None | "ExcType: message",
     "started_at": "2024-...+00:00", "wall_time_s": 1.2, "device": "cpu",
     "versions": {"python": "3.11.7", "torch": "2.3.0", ...}}

and its table row is the config keys, then the measurements, then the
bookkeeping columns (:data:`BOOKKEEPING_COLUMNS`, then ``version_<name>``).
Non-finite floats are written as the ``NaN``/``Infinity`` tokens of Python's
:mod:`json`, which :func:`json.loads` and :func:`load_results` read back.

:func:`experiment_id` names a config, :func:`load_results` and
:func:`load_records` read a folder (never locking it). Writing one is
:class:`flops_fit.results.ResultsStore`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "FLOOR_NAME",
    "ID_RE",
    "LOG_NAME",
    "RUNS_NAME",
    "STATUSES",
    "TABLE_NAME",
    "RunTable",
    "check_record",
    "experiment_id",
    "json_default",
    "load_floor",
    "load_records",
    "load_results",
    "read_log",
]

LOG_NAME = "runs.jsonl"
TABLE_NAME = "study_results.csv"
RUNS_NAME = "runs"
BOOKKEEPING_COLUMNS = ("experiment_id", "status", "error", "started_at", "wall_time_s", "device")
STATUSES = ("ok", "failed")
_RECORD_KEYS = ("experiment_id", "config", "measurements", "status")
ID_RE = re.compile(r"^[0-9a-f]{12}$")


def json_default(value: Any) -> Any:
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
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=json_default)
    except (TypeError, ValueError):
        for key, value in config.items():  # name the culprit
            try:
                json.dumps(value, default=json_default)
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


def check_record(record: Any, where: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: record lacks {missing}; a record has {list(_RECORD_KEYS)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"{where}: got status={record['status']!r}, expected one of {list(STATUSES)}")


class RunTable:
    """Latest record per experiment and the column order of the tidy table (built record by record)."""

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


def read_log(path: Path) -> tuple[list[dict[str, Any]], int | None]:
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
            check_record(record, f"{path}: line {number}")
            records.append(record)
        offset += len(raw) + 1
    return records, None


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
        table = RunTable()
        for record in read_log(log)[0]:
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
    table = RunTable()
    for record in read_log(log)[0] if log.exists() else ():
        table.add(record)
    return table.records


#: A sweep folder's learn-nothing floor: the scores of a model that learned nothing
#: (for the FNO study, the mean training patch), written beside the runs when known.
FLOOR_NAME = "baseline.json"


def load_floor(output_dir: str | os.PathLike[str]) -> dict[str, float] | None:
    """The learn-nothing floor's scores in a sweep folder (``baseline.json``), or None.

    Returns
    -------
    dict of str to float or None
        Metric name -> the floor's value, in the units of the results columns
        of the same name; None when the folder has no floor file.
    """
    path = Path(output_dir) / FLOOR_NAME
    if not path.exists():
        return None
    floor = json.loads(path.read_text())
    if not isinstance(floor, dict) or not all(isinstance(v, int | float) for v in floor.values()):
        raise ValueError(f"Got {path} holding {type(floor).__name__} {str(floor)[:80]}, expected a JSON object of numbers")
    return {str(k): float(v) for k, v in floor.items()}
