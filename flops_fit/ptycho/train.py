"""Old name of :mod:`flops_fit.ptycho.fitting`, kept for one release.

``ptycho/train.py`` sat beside the generic ``flops_fit/training.py`` with a name
one could confuse with it; import :mod:`flops_fit.ptycho.fitting` instead.
"""

from flops_fit.ptycho.fitting import *  # noqa: F403
from flops_fit.ptycho.fitting import __all__  # noqa: F401
