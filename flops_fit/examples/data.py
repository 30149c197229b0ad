"""Data the examples train on, already on the machine: nothing is downloaded.

* :func:`stdlib_corpus` — the bytes of the Python standard library's own
  source files (``sysconfig.get_paths()["stdlib"]``), split into training
  and held-out bytes *by file*, so no held-out file has a line in training.
* :class:`TokenChunks` — non-overlapping ``(input, next-token target)``
  windows over a byte sequence, for a language model.
* :func:`digits_datasets` — scikit-learn's bundled 8×8 handwritten digits
  (1,797 images, no download), split by class.
* :func:`cifar10_datasets` — CIFAR-10 from its binary files, when they are on
  disk (the "binary version": raw bytes, no pickle, no torchvision).

Every split is a pure function of the files (or the seed): the same call
gives the same tensors.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

__all__ = [
    "CIFAR10_FILES",
    "Corpus",
    "TokenChunks",
    "cifar10_datasets",
    "digits_datasets",
    "stdlib_corpus",
    "stdlib_files",
]

# Folders of the standard library that are not its own library code: the test
# suite (much of it generated data), IDLE's tests, installed third-party packages.
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
CIFAR10_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue


def _check_fraction(holdout_fraction: float) -> None:
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"Got holdout_fraction={holdout_fraction!r}, expected a number in (0, 1)")


def stdlib_files(root: str | Path | None = None) -> list[str]:
    """Relative paths (posix, sorted) of the ``.py`` files of the standard library.

    Parameters
    ----------
    root : str or Path, optional
        Folder to read; default ``sysconfig.get_paths()["stdlib"]``, the
        running Python's own library.

    Returns
    -------
    list of str
        Every ``*.py`` below ``root``, except in folders named ``test``,
        ``tests``, ``idle_test``, ``site-packages`` or ``__pycache__``.
    """
    base = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    if not base.is_dir():
        raise ValueError(f"Got root={str(base)!r}, expected a folder of Python source files")
    paths = [p.relative_to(base) for p in base.rglob("*.py")]
    return sorted(p.as_posix() for p in paths if not _SKIP_DIRS.intersection(p.parts[:-1]))


def _file_rank(path: str) -> int:
    """A stable pseudo-random rank of a file name (SHA-256), independent of the other files."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Corpus:
    """Training and held-out bytes of a set of files.

    Attributes
    ----------
    train, holdout : torch.Tensor
        1-D ``uint8`` tensors: the files of each split, concatenated in
        sorted order.
    train_files, holdout_files : tuple of str
        The files of each split (relative paths).
    root : str
        The folder they were read from.
    """

    train: torch.Tensor
    holdout: torch.Tensor
    train_files: tuple[str, ...]
    holdout_files: tuple[str, ...]
    root: str


def stdlib_corpus(root: str | Path | None = None, *, holdout_fraction: float = 0.1,
                  max_files: int | None = None) -> Corpus:
    """The standard library's source as bytes, held out by file.

    Parameters
    ----------
    root : str or Path, optional
        Folder of ``.py`` files; default the running Python's standard library
        (about 1,100 files, 12 MB for CPython 3.11, so the contents depend on
        the Python version: results say which they used).
    holdout_fraction : float
        Share of the files held out: the ``round(n × fraction)`` files (at
        least one) of lowest SHA-256 rank of their path, so the split of a
        file does not depend on which other files exist.
    max_files : int, optional
        Read only the first ``max_files`` files in sorted order (for tests).

    Returns
    -------
    Corpus
    """
    _check_fraction(holdout_fraction)
    base = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    files = stdlib_files(base)[:max_files]
    if len(files) < 2:
        raise ValueError(f"Got {len(files)} .py files under {str(base)!r}, expected at least 2 "
                         "(one to train on, one to hold out)")
    n_hold = min(len(files) - 1, max(1, round(len(files) * holdout_fraction)))
    held = set(sorted(files, key=_file_rank)[:n_hold])
    train = tuple(f for f in files if f not in held)
    holdout = tuple(f for f in files if f in held)

    def read(names: Sequence[str]) -> torch.Tensor:
        data = b"".join((base / name).read_bytes() for name in names)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    return Corpus(read(train), read(holdout), train, holdout, str(base))


class TokenChunks(Dataset):
    """Non-overlapping windows of a token sequence: item ``i`` is ``(x, y)``, ``y`` = ``x`` shifted by one.

    Parameters
    ----------
    tokens : torch.Tensor
        1-D integer tensor (bytes: values 0..255).
    seq_len : int
        Tokens per input window; window ``i`` starts at token ``i · seq_len``.
    limit : int, optional
        Keep only ``limit`` windows, evenly spaced over the sequence (a
        held-out set small enough to score every run, drawn from all of it).

    Notes
    -----
    ``x = tokens[s : s + seq_len]`` and ``y = tokens[s + 1 : s + seq_len + 1]``
    as int64, so ``len = (len(tokens) - 1) // seq_len`` (before ``limit``).
    Windows do not overlap, so one pass over the dataset reads each token once.
    """

    def __init__(self, tokens: torch.Tensor, seq_len: int, *, limit: int | None = None) -> None:
        if tokens.ndim != 1:
            raise ValueError(f"Got tokens of shape {tuple(tokens.shape)}, expected a 1-D tensor")
        if seq_len < 1:
            raise ValueError(f"Got seq_len={seq_len!r}, expected an int >= 1")
        n = (len(tokens) - 1) // seq_len
        if n < 1:
            raise ValueError(f"Got {len(tokens)} tokens, expected at least seq_len + 1 = {seq_len + 1}")
        starts = torch.arange(n) * seq_len
        if limit is not None and limit < n:
            starts = starts[torch.linspace(0, n - 1, limit).round().long()]
        self.tokens, self.seq_len, self.starts = tokens, seq_len, starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[i])
        window = self.tokens[s:s + self.seq_len + 1].long()  # (seq_len + 1,)
        return window[:-1], window[1:]


def _stratified_split(labels: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) indices holding out ``round(n_c × fraction)`` of each class c."""
    rng = np.random.default_rng(seed)
    train, hold = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = round(len(idx) * holdout_fraction)
        hold.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(hold))


def digits_datasets(*, holdout_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 8×8 digits as (train, held-out) datasets of ``(image, label)``.

    Parameters
    ----------
    holdout_fraction : float
        Share of each class held out (stratified).
    seed : int
        Seed of the split.

    Returns
    -------
    train, holdout : TensorDataset
        Images ``(1, 8, 8)`` float32 in [0, 1] (pixel counts 0..16 divided by
        16), labels int64 0..9. 1,797 images in all (UCI optical digits test
        set, bundled with scikit-learn: ``sklearn.datasets.load_digits``).
    """
    from sklearn.datasets import load_digits  # optional dependency: the `examples` extra

    _check_fraction(holdout_fraction)
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (n, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    train, hold = _stratified_split(bunch.target, holdout_fraction, seed)
    return (TensorDataset(images[train], labels[train]), TensorDataset(images[hold], labels[hold]))


def _read_cifar(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"{path} holds {raw.size} bytes, expected a multiple of {_CIFAR_RECORD} "
                         "(CIFAR-10 binary records: 1 label byte + 3072 pixel bytes)")
    records = raw.reshape(-1, _CIFAR_RECORD)
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return images, torch.from_numpy(records[:, 0].astype(np.int64))


def cifar10_datasets(root: str | Path) -> tuple[TensorDataset, TensorDataset]:
    """CIFAR-10 (train, test) from the binary files in ``root``, when they are on disk.

    Parameters
    ----------
    root : str or Path
        The ``cifar-10-batches-bin`` folder of
        https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (or a folder
        holding it), with ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
        ``test_batch.bin``.

    Returns
    -------
    train, test : TensorDataset
        Images ``(3, 32, 32)`` float32 in [0, 1], labels int64 0..9
        (50,000 and 10,000 for the full set).

    Raises
    ------
    FileNotFoundError
        If a file is missing; nothing is downloaded.
    """
    base = Path(root)
    if not (base / CIFAR10_FILES[0]).exists() and (base / "cifar-10-batches-bin").is_dir():
        base = base / "cifar-10-batches-bin"
    missing = [f for f in CIFAR10_FILES if not (base / f).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 binary files {missing} are not in {str(base)!r}; download and "
                                "unpack https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz there")
    parts = [_read_cifar(base / f) for f in CIFAR10_FILES[:-1]]
    train = TensorDataset(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    return train, TensorDataset(*_read_cifar(base / CIFAR10_FILES[-1]))
