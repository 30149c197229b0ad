"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flops_fit


@pytest.mark.parametrize("name", sorted(flops_fit._EXPORTS))
def test_every_export_resolves(name: str) -> None:
    assert getattr(flops_fit, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'flops_fit' has no attribute 'nope'"):
        flops_fit.nope  # noqa: B018


def test_import_is_light() -> None:
    # Lazy exports: importing the package must not import torch or pandas.
    code = "import sys, flops_fit; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
