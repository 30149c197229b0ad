"""The explorer in a real browser: JupyterLab on loopback, Debian's Chromium driven by Playwright.

Python-only widget tests miss what the browser does to widget state: it clamps
a slider's value into a moving range, snaps it to its step, and sends the
result back to the kernel. This test opens ``explore_results.ipynb`` on the
light study's folder (conftest's ``light_study``), runs all cells from the
Run menu, moves every slider and picker as a user would (keyboard, typed
values, select boxes) and checks the explorer's status line and front table
against `filter_results` and `pareto_front` for the settings it made; then it
picks a run and checks that run's ``reconstruction.png`` is on the page.

The screenshot it takes is the README's: ``FLOPS_FIT_SCREENSHOT_DIR=docs``
writes ``docs/explorer.png`` (by default it goes to the test's tmp folder).
``FLOPS_FIT_EXPLORE_DIR=<folder>`` drives the explorer on another study folder
instead of running the light study (say a GPU run of the full grid).
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from _browser import Lab, chromium, jupyter_lab
from conftest import REPO
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from flops_fit.explorer import quality_range
from flops_fit.pareto import (
    axis_label,
    filter_results,
    finite_rows,
    metric_direction,
    pareto_front,
    quality_columns,
)
from flops_fit.results import load_results

SCREENSHOT_ENV_VAR = "FLOPS_FIT_SCREENSHOT_DIR"
FOLDER_ENV_VAR = "FLOPS_FIT_EXPLORE_DIR"  # another study folder (with reconstruction.png) to drive
SETTLE_S = 1.0  # state unchanged and kernel idle this long: no echo from the browser is pending
TIMEOUT_S = 30.0  # per step, on a busy 2-core machine

# One DOM read of what the explorer shows: its status line, the front table's
# experiment ids, the quality slider's value and label, the picked run.
_READ = """() => {
  const root = document.querySelector('.ff-explorer');
  const text = (sel) => { const e = root.querySelector(sel); return e ? e.textContent.trim() : null; };
  const table = root.querySelector('.ff-front-table table');
  const heads = table ? [...table.querySelectorAll('thead th')].map(th => th.textContent.trim()) : [];
  const col = heads.indexOf('experiment_id');
  const ids = table && col >= 0
    ? [...table.querySelectorAll('tbody tr')].map(tr => tr.children[col].textContent.trim()) : [];
  const img = root.querySelector('img.ff-reconstruction');
  return {
    status: text('.ff-status b'), ids,
    quality: Number(root.querySelector('.ff-min-quality .noUi-handle').getAttribute('aria-valuetext')),
    quality_label: text('.ff-min-quality .widget-label'),
    picked: text('.ff-details .ff-run-title'),
    image: img && getComputedStyle(img).display !== 'none' ? [img.naturalWidth, img.naturalHeight] : null,
  };
}"""


def _png_size(path: Path) -> list[int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return [width, height]


def _kernels_idle(lab: Lab) -> bool:
    with urllib.request.urlopen(lab.url("api/kernels"), timeout=5) as r:
        kernels = json.load(r)
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


class Explorer:
    """The explorer on the page, and what it should show for the settings made so far."""

    def __init__(self, page: Any, lab: Lab, runs: pd.DataFrame) -> None:
        self.page, self.lab, self.runs = page, lab, runs
        self.x, self.y = "model_params", "ssim_phase"
        self.limits: dict[str, Any] = {}

    def expected(self) -> dict[str, Any]:
        current = filter_results(self.runs, quality=self.y, **self.limits)
        valid = finite_rows(current, self.x, self.y)
        mask = pareto_front(valid, {self.x: metric_direction(self.x), self.y: metric_direction(self.y)})
        front = valid[mask].sort_values([self.x, self.y], kind="stable")
        return {"status": f"{len(valid)} of {len(self.runs)} runs shown, "
                          f"{int(mask.sum())} on the Pareto front",
                "ids": list(front["experiment_id"])}

    def read(self) -> dict[str, Any]:
        return self.page.evaluate(_READ)

    def settle(self, what: str) -> dict[str, Any]:
        """Wait until the page shows the expected state, the kernel is idle, and both stay so."""
        want, deadline, since = self.expected(), time.monotonic() + TIMEOUT_S, None
        while time.monotonic() < deadline:
            got = self.read()
            if {k: got[k] for k in want} == want and _kernels_idle(self.lab):
                since = since or time.monotonic()
                if time.monotonic() - since >= SETTLE_S:
                    return got
            else:
                since = None
            self.page.wait_for_timeout(100)
        got = self.read()
        assert {k: got[k] for k in want} == want, f"after {what}: {self.limits}, x={self.x}, y={self.y}"
        return got

    def select(self, name: str, *, label: str | None = None, values: list[str] | None = None) -> None:
        box = self.page.locator(f".ff-explorer .ff-{name} select")
        box.select_option(label=label) if label is not None else box.select_option(values)

    def slider_value(self, name: str, *, log: bool) -> float:
        handle = self.page.locator(f".ff-explorer .ff-{name} .noUi-handle")
        value = float(handle.get_attribute("aria-valuetext"))
        return 10**value if log else value

    def press(self, name: str, key: str) -> None:
        self.page.locator(f".ff-explorer .ff-{name} .noUi-handle").press(key)

    def type(self, name: str, value: float) -> float:
        """Type ``value`` into a slider's readout, as a user would; returns the number typed."""
        text = f"{value:.6g}"
        readout = self.page.locator(f".ff-explorer .ff-{name} .widget-readout")
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)
        self.page.keyboard.press("Enter")
        return float(text)


def _between(values: pd.Series, *, from_top: bool) -> float:
    """A limit halfway between the two largest (or smallest) distinct values."""
    v = sorted(values.dropna().unique(), reverse=from_top)
    return (v[0] + v[1]) / 2


def _traps(runs: pd.DataFrame, qualities: list[str]) -> list[tuple[str, str, float]]:
    """(a, b, limit): a limit on metric ``a`` strictly inside metric ``b``'s slider range.

    Up to three, with ``b`` of both directions where the data allow (the
    quality slider is a lower limit for one, an upper limit for the other).
    A limit strictly inside ``b``'s range excludes at least the run at its
    loosest end, so a limit carried over is seen.
    """
    span = {q: (quality_range(runs, q).min, quality_range(runs, q).max) for q in qualities}
    found: dict[str, tuple[str, str, float]] = {}
    for a, b in itertools.permutations(qualities, 2):
        lo, hi = max(span[a][0], span[b][0]), min(span[a][1], span[b][1])
        key = metric_direction(b) if len(found) < 2 else "any"
        if lo < hi and key not in found and b not in {t[1] for t in found.values()}:
            found[key] = (a, b, (lo + hi) / 2)
    return list(found.values())[:3]


def _open_notebook(page: Any, lab: Lab) -> None:
    page.goto(lab.url("lab/tree/explore.ipynb"))
    page.get_by_text("| Idle").wait_for(timeout=90_000)  # the kernel has started
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.locator(".ff-explorer").wait_for(timeout=120_000)
    page.wait_for_function(  # every code cell has run (an execution count, no "*")
        """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                   .every(e => /\\[\\d+\\]/.test(e.textContent))""", timeout=120_000)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(900)
def test_explorer_in_a_real_browser(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(os.environ.get(FOLDER_ENV_VAR) or request.getfixturevalue("light_study").outputs)
    start = time.perf_counter()  # the browser's part: the light study is shared with other tests
    results = load_results(folder)
    runs = results[results["status"] == "ok"]
    assert len(runs) >= 1
    root = tmp_path / "lab"
    root.mkdir()
    nb = parameterize_notebook(load_notebook_node(str(REPO / "notebooks/explore_results.ipynb")),
                               {"results_dir": str(folder)})
    nbformat.write(nb, root / "explore.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    errors: list[str] = []
    with (jupyter_lab(root, env=env) as lab, chromium(tmp_path / "profile") as browser,
          sync_playwright() as p):
        page = p.chromium.connect_over_cdp(browser.endpoint).contexts[0].new_page()
        page.set_viewport_size({"width": 1400, "height": 2400})  # the explorer whole, for the screenshot
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        _open_notebook(page, lab)
        assert page.get_by_text("Error displaying widget").count() == 0
        assert page.locator(".jp-OutputArea-output").filter(has_text="Traceback").count() == 0
        fronts = page.locator(".jp-CodeCell").filter(has_text="plot_fronts(ok, pairs)")
        assert fronts.locator(".jp-OutputArea-output img").count() == 1, "the fronts are no picture"

        ui = Explorer(page, lab, runs)
        shown = ui.settle("running all cells")
        # Labels are whole: no control's description is cut off ("max para…").
        cut = page.evaluate("""() => [...document.querySelectorAll('.ff-explorer .widget-label')]
            .filter(e => e.textContent && e.scrollWidth > e.clientWidth).map(e => e.textContent)""")
        assert cut == []
        picked = runs.loc[runs["experiment_id"] == shown["ids"][-1]].iloc[0]  # best SSIM on the front
        assert picked["experiment_id"] in shown["picked"]
        assert shown["image"] == _png_size(folder / "runs" / picked["experiment_id"] / "reconstruction.png")

        # The y picker never filters a run. The trap: a limit set on one metric that lies
        # inside the next metric's range, off its step grid; a browser handed the new range
        # before the new value snaps the old value into it and sends that back.
        traps = _traps(runs, quality_columns(runs))
        assert traps, "no two metrics' ranges overlap: the y-picker check has no trap to set"
        for a, b, limit in traps:
            for quality, typed in ((a, limit), (b, None)):
                ui.select("y", label=axis_label(quality))
                ui.y, ui.limits = quality, {}
                got = ui.settle(f"y -> {quality}")
                r = quality_range(runs, quality)
                assert got["quality"] == pytest.approx(r.loosest, rel=1e-9, abs=1e-12), "not loosest"
                assert got["quality_label"] == r.description
                if typed is not None:
                    ui.limits = {"min_quality": ui.type("min-quality", typed)}
                    ui.settle(f"a limit on {quality} inside the range of {b}")
        ui.select("y", label=axis_label("ssim_phase"))
        ui.y = "ssim_phase"
        ui.settle("y -> ssim_phase")

        for cost in ("inference_time_s", "train_flops", "model_params"):
            ui.select("x", label=axis_label(cost))
            ui.x = cost
            ui.settle(f"x -> {cost}")
        for hue in ("fno width", "architecture"):  # colours only
            ui.select("hue", label=hue)
            ui.settle(f"colour by {hue}")

        ui.press("max-params", "PageDown")  # five steps down: the largest model is out
        ui.limits["max_params"] = ui.slider_value("max-params", log=True)
        ui.settle("max parameters, keyboard")
        if runs["inference_time_s"].nunique() > 1:
            ui.limits["max_inference_time"] = ui.type(
                "max-inference-time", _between(runs["inference_time_s"], from_top=True))
            ui.settle("max inference time, typed")
        for name, key in (("max-params", "max_params"), ("max-inference-time", "max_inference_time")):
            ui.press(name, "End")  # back to the loosest end: no limit
            ui.limits.pop(key, None)
            ui.settle(f"{name} at its end")
        if runs[ui.y].nunique() > 1:
            ui.limits["min_quality"] = ui.type(  # the worst run is out
                "min-quality", _between(runs[ui.y], from_top=False))
            ui.settle("min quality, typed")
            ui.press("min-quality", "Home")
            del ui.limits["min_quality"]
            ui.settle("min quality at its end")

        for name, column in (("architectures", "architecture"), ("transforms", "fno_input_transform")):
            options = sorted(runs[column].astype(str).unique())
            if len(options) > 1:
                ui.select(name, values=options[-1:])
                ui.limits[name] = options[-1:]
                ui.settle(f"{name} -> {options[-1:]}")
                ui.select(name, values=options)
                del ui.limits[name]
                ui.settle(f"{name} -> all")

        # Pick a run from the list of the front's runs: its reconstruction is shown.
        front = ui.expected()["ids"]
        ui.page.locator(".ff-explorer .ff-run select").select_option(index=0)
        eid = front[0]
        deadline = time.monotonic() + TIMEOUT_S
        while eid not in (ui.read()["picked"] or "") and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        got = ui.settle("a run picked")
        assert eid in got["picked"]
        assert got["image"] == _png_size(folder / "runs" / eid / "reconstruction.png")

        shots = Path(os.environ.get(SCREENSHOT_ENV_VAR) or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        page.locator(".ff-explorer").screenshot(path=str(shots / "explorer.png"))
        assert errors == []
        pid_lab, pid_browser = lab.pid, browser.pid
    for pid in (pid_lab, pid_browser):  # both stopped, nothing of theirs left
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    print(f"browser test: {time.perf_counter() - start:.1f} s wall, {len(runs)} runs")
