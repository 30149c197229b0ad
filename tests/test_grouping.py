"""The runner's group protocol: experiments an ``fn.run_group`` trains together, one row each."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _sweep_fns import GroupedDraws

from flops_fit.executors import make_executor
from flops_fit.runner import run_sweep
from flops_fit.sweep_io import group_todo


def _rows(df: pd.DataFrame) -> dict[tuple, pd.Series]:
    return {(row["g"] if isinstance(row["g"], str) else None, row["seed"]): row for _, row in df.iterrows()}


def test_group_todo_groups_equal_keys_up_to_max_group() -> None:
    todo = [(str(i), {"g": g, "seed": i}) for i, g in enumerate(["a", "b", "a", None, "a", None, "b"])]
    groups = group_todo(todo, GroupedDraws(max_group=2))
    assert [[eid for eid, _ in group] for group in groups] == [["0", "2"], ["1", "6"], ["3"], ["4"], ["5"]]


def test_a_plain_function_runs_every_experiment_alone() -> None:
    todo = [("0", {"seed": 0}), ("1", {"seed": 1})]
    assert group_todo(todo, lambda config, run_dir, *, device: {}) == [[todo[0]], [todo[1]]]


@pytest.mark.parametrize("size", [0, 1.5, "2", True])
def test_max_group_is_checked(size) -> None:
    with pytest.raises(ValueError, match=r"Got fn.max_group=.*, expected an int >= 1"):
        group_todo([("0", {"seed": 0, "g": "a"})], GroupedDraws(max_group=size))


def test_grouped_runs_get_one_row_each_and_their_own_seed(tmp_path: Path) -> None:
    configs = [{"g": "a", "seed": s} for s in range(3)] + [{"g": "b", "seed": 7}]
    df = run_sweep(configs, GroupedDraws(), tmp_path / "grouped", progress=False, device="cpu")
    alone = run_sweep(configs, GroupedDraws(max_group=1), tmp_path / "alone", progress=False, device="cpu")
    assert (df["status"] == "ok").all() and len(df) == 4
    rows, ref = _rows(df), _rows(alone)
    assert [rows[("a", s)]["group"] for s in range(3)] == [3, 3, 3]
    assert rows[("b", 7)]["group"] == 1  # a group of one is a plain call
    # Each member drew from the generator its own seed set, as alone.
    assert all(rows[k]["value"] == ref[k]["value"] for k in rows)
    # The group's wall time is shared out: every member records the same share.
    assert df[df["g"] == "a"]["wall_time_s"].nunique() == 1


def test_a_failing_member_fails_alone(tmp_path: Path) -> None:
    configs = [{"g": "a", "seed": 0}, {"g": "a", "seed": 1, "fail": True}, {"g": "a", "seed": 2}]
    df = run_sweep(configs, GroupedDraws(), tmp_path, progress=False, device="cpu")
    by_seed = df.set_index("seed")
    assert by_seed.loc[1, "status"] == "failed" and by_seed.loc[1, "error"] == "ValueError: this member broke"
    assert (by_seed.loc[[0, 2], "status"] == "ok").all()


@pytest.mark.parametrize(
    ("flag", "error"),
    [
        ("crash", "RuntimeError: the whole group broke"),
        ("short", "ValueError: fn.run_group returned 0 results for 2 experiments"),
    ],
)
def test_a_failing_group_fails_every_member_and_the_sweep_goes_on(tmp_path: Path, flag: str, error: str) -> None:
    configs = [{"g": "a", "seed": 0, flag: True}, {"g": "a", "seed": 1, flag: True}, {"g": "b", "seed": 0}]
    df = run_sweep(configs, GroupedDraws(), tmp_path, progress=False, device="cpu")
    broken = df[df["g"] == "a"]
    assert (broken["status"] == "failed").all() and (broken["error"] == error).all()
    assert (df[df["g"] == "b"]["status"] == "ok").all()
    for eid in broken["experiment_id"]:
        assert (tmp_path / "runs" / eid / "traceback.txt").exists()


def test_groups_resume_and_run_in_a_process_pool(tmp_path: Path) -> None:
    first = [{"g": "a", "seed": s} for s in range(2)]
    run_sweep(first, GroupedDraws(), tmp_path, progress=False, device="cpu")
    more = first + [{"g": "a", "seed": s} for s in range(2, 4)]
    with make_executor(2) as pool:
        df = run_sweep(more, GroupedDraws(), tmp_path, executor=pool, progress=False, device="cpu")
    assert (df["status"] == "ok").all() and sorted(df["seed"]) == [0, 1, 2, 3]
    # The finished seeds were not run again; the two new ones ran as a group of two.
    assert df.set_index("seed")["group"].to_dict() == {0: 2, 1: 2, 2: 2, 3: 2}
    assert df.set_index("seed").loc[[0, 1], "started_at"].nunique() == 1
