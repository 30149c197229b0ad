"""The examples' loaders: deterministic, split without overlap, nothing downloaded."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from flops_fit.examples.data import (
    CIFAR10_FILES,
    TokenChunks,
    _stratified_split,
    cifar10_datasets,
    digits_datasets,
    stdlib_corpus,
    stdlib_files,
)


def _tree(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"# {name}\nx = {len(name)}\n".encode())
    return root


def test_stdlib_files_are_the_running_pythons_library_without_its_tests() -> None:
    files = stdlib_files()
    assert files == sorted(files) and "os.py" in files and "json/decoder.py" in files
    assert not [f for f in files if f.startswith(("test/", "site-packages/")) or "/tests/" in f]
    assert Path(sysconfig.get_paths()["stdlib"], files[0]).is_file()


def test_corpus_is_split_by_file_with_no_overlap_and_nothing_lost(tmp_path) -> None:
    names = [f"m{i:02d}.py" for i in range(20)] + ["pkg/a.py", "pkg/tests/t.py", "test/big.py"]
    corpus = stdlib_corpus(_tree(tmp_path, names), holdout_fraction=0.25)
    assert len(corpus.holdout_files) == 5  # round(21 x 0.25) of the 21 files outside test folders
    assert not set(corpus.train_files) & set(corpus.holdout_files)
    assert sorted(corpus.train_files + corpus.holdout_files) == sorted(names[:21])
    train_bytes = b"".join((tmp_path / f).read_bytes() for f in corpus.train_files)
    assert bytes(corpus.train.numpy()) == train_bytes
    again = stdlib_corpus(tmp_path, holdout_fraction=0.25)
    assert torch.equal(again.train, corpus.train) and torch.equal(again.holdout, corpus.holdout)


def test_a_files_split_does_not_depend_on_the_other_files(tmp_path) -> None:
    names = [f"m{i:02d}.py" for i in range(40)]
    full = stdlib_corpus(_tree(tmp_path / "a", names), holdout_fraction=0.2)
    fewer = stdlib_corpus(_tree(tmp_path / "b", names[:39]), holdout_fraction=0.2)
    # Ranked by the hash of their own path: dropping a file moves at most the boundary file.
    assert len(set(full.holdout_files) ^ set(fewer.holdout_files)) <= 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout_fraction": 1.0}, r"Got holdout_fraction=1.0, expected a number in \(0, 1\)"),
        ({"max_files": 1}, r"Got 1 .py files under .*, expected at least 2"),
    ],
)
def test_corpus_errors(tmp_path, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        stdlib_corpus(_tree(tmp_path, ["a.py", "b.py"]), **kwargs)


def test_stdlib_files_needs_a_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"Got root='.*nowhere', expected a folder of Python source files"):
        stdlib_files(tmp_path / "nowhere")


def test_token_chunks_are_disjoint_windows_with_next_token_targets() -> None:
    tokens = torch.arange(23, dtype=torch.uint8)
    chunks = TokenChunks(tokens, 5)
    assert len(chunks) == 4  # (23 - 1) // 5
    x, y = chunks[1]
    assert x.dtype == torch.int64 and x.tolist() == [5, 6, 7, 8, 9] and y.tolist() == [6, 7, 8, 9, 10]
    seen = torch.cat([chunks[i][0] for i in range(len(chunks))])
    assert seen.tolist() == list(range(20))  # each token read once


def test_token_chunks_limit_spreads_evenly_over_the_sequence() -> None:
    chunks = TokenChunks(torch.arange(101, dtype=torch.uint8), 10, limit=3)
    assert [chunks[i][0][0].item() for i in range(3)] == [0, 40, 90]  # windows 0, 4 (4.5 to even), 9


@pytest.mark.parametrize(
    ("tokens", "seq_len", "match"),
    [
        (torch.zeros(2, 5), 2, r"Got tokens of shape \(2, 5\), expected a 1-D tensor"),
        (torch.zeros(5), 0, r"Got seq_len=0, expected an int >= 1"),
        (torch.zeros(5), 5, r"Got 5 tokens, expected at least seq_len \+ 1 = 6"),
    ],
)
def test_token_chunks_errors(tokens, seq_len, match) -> None:
    with pytest.raises(ValueError, match=match):
        TokenChunks(tokens, seq_len)


def test_digits_split_is_stratified_deterministic_and_disjoint() -> None:
    train, held = digits_datasets(holdout_fraction=0.2, seed=0)
    assert len(train) + len(held) == 1797
    x, y = train.tensors
    assert x.shape[1:] == (1, 8, 8) and x.min() == 0 and x.max() == 1 and y.dtype == torch.int64
    counts = torch.bincount(held.tensors[1], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of 174..183 images per class
    labels = np.repeat(np.arange(10), 7)
    tr, ho = _stratified_split(labels, 0.3, seed=0)
    assert not set(tr) & set(ho) and sorted([*tr, *ho]) == list(range(70))
    assert np.bincount(labels[ho]).tolist() == [2] * 10  # round(7 x 0.3) of each class
    again = digits_datasets(holdout_fraction=0.2, seed=0)
    assert torch.equal(again[1].tensors[0], held.tensors[0])
    assert not torch.equal(digits_datasets(seed=1)[1].tensors[1], held.tensors[1])


def _write_cifar(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(CIFAR10_FILES):
        records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        records[:, 0] = (np.arange(n) + i) % 10
        records.tofile(folder / name)


def test_cifar10_reads_the_binary_files(tmp_path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-bin", 4)
    train, test = cifar10_datasets(tmp_path)
    assert len(train) == 20 and len(test) == 4
    x, y = train[5]  # second record of data_batch_2
    raw = np.fromfile(tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin", dtype=np.uint8).reshape(4, 3073)
    assert y.item() == raw[1, 0] == 2
    assert x.shape == (3, 32, 32) and torch.allclose(x[1, 0, :3] * 255, torch.tensor(raw[1, 1025:1028], dtype=torch.float32))


def test_cifar10_says_what_is_missing_and_downloads_nothing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 binary files \['data_batch_1.bin', .*'test_batch.bin'\] "
                                                r"are not in .*; download and unpack https://www.cs.toronto.edu"):
        cifar10_datasets(tmp_path)
    (tmp_path / "c").mkdir()
    for name in CIFAR10_FILES:
        (tmp_path / "c" / name).write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match=r"holds 10 bytes, expected a multiple of 3073"):
        cifar10_datasets(tmp_path / "c")
