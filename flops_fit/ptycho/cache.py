"""On-disk cache of simulated grid-lines datasets: one ``.npz`` per config.

Its one job is to make :func:`~flops_fit.ptycho.simulate.simulate` run once per
config: the file is named by :meth:`GridLinesConfig.cache_key`, written atomically,
read without pickles, and a corrupt or mismatched file, or one holding NaN or
infinite values, is reported and regenerated.
The physics stays in :mod:`flops_fit.ptycho.simulate`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from flops_fit.ptycho.config import GridLinesConfig
from flops_fit.ptycho.simulate import GridLinesData, Split, simulate

__all__ = ["load_or_simulate"]

_SPLIT_FIELDS = ("X", "Y", "positions", "object_index", "objects", "probe")
_SPLIT_SCALARS = ("intensity_scale", "patch_norm", "stride")


def _save(data: GridLinesData, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"key_payload": np.array(data.config.key_payload())}
    for name in ("train", "test"):
        split = getattr(data, name)
        for field in _SPLIT_FIELDS + _SPLIT_SCALARS:
            arrays[f"{name}_{field}"] = np.asarray(getattr(split, field))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_finite(split: Split, name: str) -> None:
    # A file whose key matches may still hold NaN (a disk error, a bug in a writer): a
    # model trained on it reports nonsense, so it is as unusable as a corrupt file.
    for f in _SPLIT_FIELDS + _SPLIT_SCALARS:
        if not np.isfinite(getattr(split, f)).all():
            raise ValueError(f"{name}_{f} holds non-finite values")


def _load(cfg: GridLinesConfig, path: Path) -> GridLinesData:
    with np.load(path, allow_pickle=False) as npz:
        if str(npz["key_payload"]) != cfg.key_payload():
            raise ValueError("it was written for another config or format version")
        splits = {}
        for name, stride in (("train", cfg.train_stride), ("test", cfg.test_stride)):
            fields = {f: npz[f"{name}_{f}"] for f in _SPLIT_FIELDS}
            scalars = {f: npz[f"{name}_{f}"].item() for f in _SPLIT_SCALARS}
            split = Split(**fields, **scalars)
            k = cfg.n_train_objects if name == "train" else cfg.n_test_objects
            n = cfg.n_patches(name)
            N = cfg.N
            expected = {
                "X": (n, 1, N, N),
                "Y": (n, N, N),
                "positions": (n, 2),
                "object_index": (n,),
                "objects": (k, cfg.size, cfg.size),
                "probe": (N, N),
            }
            for f, shape in expected.items():
                if getattr(split, f).shape != shape:
                    raise ValueError(
                        f"{name}_{f} has shape {getattr(split, f).shape}, expected {shape}"
                    )
            if split.stride != stride:
                raise ValueError(f"{name}_stride is {split.stride}, expected {stride}")
            _check_finite(split, name)
            splits[name] = split
    return GridLinesData(config=cfg, train=splits["train"], test=splits["test"])


def load_or_simulate(cfg: GridLinesConfig, cache_dir: str | os.PathLike) -> GridLinesData:
    """Load ``cfg``'s dataset from ``cache_dir``, or simulate and cache it.

    The file is ``<cache_dir>/gridlines_<cfg.cache_key()>.npz``, written atomically
    (temp file in the same folder, then ``os.replace``) and read without pickles. A
    corrupt or mismatched file, or one holding non-finite values, is reported with a
    ``UserWarning`` and regenerated.
    """
    if not isinstance(cfg, GridLinesConfig):
        raise TypeError(f"Got cfg of type {type(cfg).__name__}, expected a GridLinesConfig")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"gridlines_{cfg.cache_key()}.npz"
    if path.exists():
        try:
            return _load(cfg, path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"Cached dataset {str(path)!r} is unusable ({err}); regenerating it.",
                stacklevel=2,
            )
    data = simulate(cfg)
    _save(data, path)
    return data
