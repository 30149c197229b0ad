"""The results store: stable ids, the crash-safe log, the atomic table."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from flops_fit.locking import LOCK_NAME
from flops_fit.results import (
    BOOKKEEPING_COLUMNS,
    LOG_NAME,
    TABLE_NAME,
    ResultsStore,
    experiment_id,
    load_results,
)


def _record(eid: str, status: str = "ok", **measurements) -> dict:
    return {
        "experiment_id": eid,
        "config": {"width": 8, "seed": 0, "tag": eid[:2]},
        "measurements": measurements,
        "status": status,
        "error": None if status == "ok" else "ValueError: boom",
        "started_at": "2024-01-01T00:00:00.000+00:00",
        "wall_time_s": 0.5,
        "device": "cpu",
        "versions": {"python": "3.11.7", "torch": "2.3.0"},
    }


A, B, C = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"


# ---------------------------------------------------------------- experiment_id


def test_experiment_id_is_sha256_of_sorted_compact_json():
    # Reference: the JSON written out by hand, hashed with hashlib.
    reference = hashlib.sha256(b'{"a":1,"b":"x","c":0.5,"d":true,"e":null}').hexdigest()[:12]
    assert experiment_id({"e": None, "d": True, "c": 0.5, "b": "x", "a": 1}) == reference


def test_experiment_id_ignores_key_order_and_numpy_scalar_types():
    config = {"width": 32, "lr": 0.001, "flag": True}
    same = {"flag": np.bool_(True), "lr": np.float64(0.001), "width": np.int64(32)}
    assert experiment_id(config) == experiment_id(same)
    assert len(experiment_id(config)) == 12 and int(experiment_id(config), 16) >= 0


@pytest.mark.parametrize("change", [{"width": 33}, {"lr": 0.002}, {"extra": None}, {"width": "32"}])
def test_experiment_id_changes_with_any_value(change):
    config = {"width": 32, "lr": 0.001}
    assert experiment_id(config) != experiment_id({**config, **change})


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ([("a", 1)], TypeError, r"Got config of type list, expected a dict"),
        ({1: "a"}, TypeError, r"Got config key 1 of type int, expected str keys"),
        ({"model": object()}, TypeError, r"Config value model=<object .*> of type object is not JSON-serialisable"),
        ({"x": {1, 2}}, TypeError, r"Config value x=\{1, 2\} of type set is not JSON-serialisable"),
    ],
)
def test_experiment_id_rejects(config, error, match):
    with pytest.raises(error, match=match):
        experiment_id(config)


# ---------------------------------------------------------------- ResultsStore


def test_append_writes_one_log_line_and_the_table(tmp_path):
    store = ResultsStore(tmp_path / "sweep")
    store.append(_record(A, loss=0.25))
    lines = (tmp_path / "sweep" / LOG_NAME).read_text().splitlines()  # written before append returns
    assert len(lines) == 1 and json.loads(lines[0])["measurements"] == {"loss": 0.25}
    store.flush()  # the table is rewritten in the background
    table = pd.read_csv(tmp_path / "sweep" / TABLE_NAME)
    assert table["loss"].tolist() == [0.25] and table["experiment_id"].tolist() == [A]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == [LOCK_NAME, LOG_NAME, TABLE_NAME]  # no temp files


def test_columns_are_config_then_measurements_then_bookkeeping(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, loss=0.25, ssim=0.9))
    store.append(_record(B, "failed"))
    store.flush()
    expected = ["width", "seed", "tag", "loss", "ssim", *BOOKKEEPING_COLUMNS, "version_python", "version_torch"]
    assert list(store.to_frame().columns) == expected
    assert list(pd.read_csv(store.table_path).columns) == expected
    assert list(load_results(tmp_path).columns) == expected


def test_latest_record_wins_and_ids_by_status(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, "failed"))
    store.append(_record(B, loss=1.0))
    store.append(_record(C, "failed"))
    store.append(_record(A, loss=0.5))  # A retried and succeeded
    store.close()
    assert store.finished_ids == {A, B} and store.failed_ids == {C}
    df = load_results(tmp_path)
    assert df["experiment_id"].tolist() == [A, B, C]  # first-run order, one row each
    assert df.set_index("experiment_id").loc[A, "loss"] == 0.5
    assert len(pd.read_csv(store.table_path)) == 3
    assert len(store.log_path.read_text().splitlines()) == 4  # the log keeps history


def test_close_stops_the_background_writer_and_append_restarts_it(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, loss=0.5))
    store.close()
    assert not store._syncer.is_alive() and len(pd.read_csv(store.table_path)) == 1
    store.append(_record(B, loss=0.6))
    store.flush()
    assert store._syncer.is_alive() and len(pd.read_csv(store.table_path)) == 2
    store.close()


def test_a_failed_background_write_is_raised_by_the_next_call(tmp_path):
    store = ResultsStore(tmp_path)
    store.table_path.mkdir()  # os.replace cannot put a file there
    store.append(_record(A, loss=0.5))
    with pytest.raises(OSError, match=r"Writing the results in '.*' failed: .*study_results\.csv"):
        store.flush()
    store.flush()  # reported once
    assert load_results(tmp_path)["experiment_id"].tolist() == [A]  # the log is intact
    store.close()


def test_reopening_resumes_from_the_log(tmp_path):
    with ResultsStore(tmp_path) as first:  # one writer at a time: the first must close
        first.append(_record(A, loss=0.5))
    again = ResultsStore(tmp_path)
    assert again.finished_ids == {A} and len(again) == 1
    again.append(_record(B, loss=0.7))
    assert load_results(tmp_path)["experiment_id"].tolist() == [A, B]


def test_non_finite_values_round_trip(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, loss=math.nan, peak=math.inf, note=None))
    store.flush()
    for df in (load_results(tmp_path), pd.read_csv(store.table_path)):
        assert math.isnan(df["loss"][0]) and df["peak"][0] == math.inf and pd.isna(df["note"][0])


def test_text_with_commas_quotes_and_newlines_survives_the_csv(tmp_path):
    store = ResultsStore(tmp_path)
    rec = _record(A, "failed")
    rec["error"] = 'ValueError: bad "x", see\nline two'
    store.append(rec)
    store.flush()
    assert pd.read_csv(store.table_path)["error"][0] == rec["error"]


def test_torn_last_line_is_dropped_and_cut_off(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, loss=0.5))
    with open(store.log_path, "a") as f:
        f.write('{"experiment_id": "bbbbbbbbbbbb", "conf')  # a crash mid-write
    store.close()  # the crashed writer is gone (and its lock with it)
    with pytest.warns(RuntimeWarning, match=r"Ignoring a torn last line in .*runs\.jsonl"):
        assert load_results(tmp_path)["experiment_id"].tolist() == [A]
    with pytest.warns(RuntimeWarning, match="torn last line"):
        reopened = ResultsStore(tmp_path)
    reopened.append(_record(C, loss=0.1))  # starts on a fresh line
    assert [json.loads(line)["experiment_id"] for line in store.log_path.read_text().splitlines()] == [A, C]


def test_bad_line_before_the_end_is_an_error(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(_record(A, loss=0.5))
    text = store.log_path.read_text()
    store.log_path.write_text("not json\n" + text)
    with pytest.raises(ValueError, match=r"runs\.jsonl: line 1 is not valid JSON; only the last line may be torn"):
        load_results(tmp_path)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ([1, 2], r"ResultsStore.append: expected a JSON object, got list"),
        ({"experiment_id": A, "config": {}}, r"record lacks \['measurements', 'status'\]"),
        ({**_record(A), "status": "done"}, r"got status='done', expected one of \['ok', 'failed'\]"),
    ],
)
def test_append_rejects_malformed_records(tmp_path, record, match):
    with pytest.raises(ValueError, match=match):
        ResultsStore(tmp_path).append(record)


def test_malformed_record_in_the_log_is_named(tmp_path):
    (tmp_path / LOG_NAME).write_text(json.dumps({"experiment_id": A}) + "\n")
    with pytest.raises(ValueError, match=r"runs\.jsonl: line 1: record lacks \['config', 'measurements', 'status'\]"):
        load_results(tmp_path)


def test_run_dir_is_created_and_ids_are_checked(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.run_dir(A) == tmp_path / "runs" / A and (tmp_path / "runs" / A).is_dir()
    with pytest.raises(ValueError, match=r"Got experiment_id='\.\./x', expected 12 lowercase hex digits"):
        store.run_dir("../x")


def test_output_dir_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match=r"Got output_dir='.*f', which is a file, expected a folder"):
        ResultsStore(tmp_path / "f")


# ---------------------------------------------------------------- load_results


def test_load_results_falls_back_to_the_csv(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.append(_record(A, loss=0.5))
    store.log_path.unlink()
    df = load_results(tmp_path)
    assert df["experiment_id"].tolist() == [A] and df["loss"].tolist() == [0.5]


def test_load_results_names_the_folder_when_there_is_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No results in '.*': expected runs\.jsonl or study_results\.csv"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Results folder '.*missing' does not exist"):
        load_results(tmp_path / "missing")


def test_load_floor_reads_the_folders_floor(tmp_path) -> None:
    from flops_fit.results import load_floor

    assert load_floor(tmp_path) is None
    (tmp_path / "baseline.json").write_text('{"final_test_loss": 0.135, "ssim_phase": 1}')
    assert load_floor(tmp_path) == {"final_test_loss": 0.135, "ssim_phase": 1.0}
    (tmp_path / "baseline.json").write_text('[0.1]')
    with pytest.raises(ValueError, match=r"baseline.json holding list \[0.1\], expected a JSON object of numbers"):
        load_floor(tmp_path)
