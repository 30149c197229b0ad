"""Suite-wide settings."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # headless: no display in CI


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.py runs these on one)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tensors in the tests are tiny: OpenMP fan-out costs more than it saves,
    # and on a busy machine every parallel region can stall for a scheduler slice.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_planning(monkeypatch):
    """Planning must not start while any input is bad: find_optimal's plan_sweep raises if reached."""

    def boom(*args, **kwargs):
        raise AssertionError("planning started before validation finished")

    monkeypatch.setattr("flops_fit.api.plan_sweep", boom)
