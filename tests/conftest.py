"""Suite-wide settings."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # headless: no display in CI


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
