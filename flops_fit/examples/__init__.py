"""Worked examples of ``find_optimal`` beyond the built-in FNO study, on data every machine has.

* :mod:`flops_fit.examples.lm` — a byte-level decoder-only transformer on the
  Python standard library's own source (held out by file).
* :mod:`flops_fit.examples.digits` — a small CNN on scikit-learn's bundled
  8×8 digits (needs scikit-learn: the ``examples`` extra).
* :mod:`flops_fit.examples.data` — their loaders, and CIFAR-10 from its
  binary files when they are on disk.

Each has a ``run(output_dir)`` that reproduces its committed results folder
(``notebooks/example_lm``, ``notebooks/example_digits``).
"""
