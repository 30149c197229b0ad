"""The README's example snippets plan exactly what run() ran for the committed folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flops_fit.examples import digits, lm

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README[README.index("## Worked examples"):README.index("### What find_optimal checks")]
LM_SNIPPET, DIGITS_SNIPPET = re.findall(r"```python\n(.*?)```", SECTION, re.S)


def test_the_lm_snippet_plans_the_committed_sweep() -> None:
    namespace: dict = {}
    exec(LM_SNIPPET.split("result = find_optimal")[0], namespace)  # up to the 17-minute training
    assert namespace["plan"].configs() == lm.run("unused", train=False).configs()


def test_the_digits_snippet_plans_the_committed_sweep_and_warns() -> None:
    planned = DIGITS_SNIPPET.replace('output_dir="outputs/digits")', 'output_dir="outputs/digits", train=False)')
    assert planned != DIGITS_SNIPPET
    namespace: dict = {}
    with pytest.warns(UserWarning, match=r"^17 of 24 runs pass over the 1438 training samples more than 4 times"):
        exec(planned, namespace)
    with pytest.warns(UserWarning, match=r"pass over"):
        assert namespace["result"].configs() == digits.run("unused", train=False).configs()
