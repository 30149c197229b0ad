"""flops_fit: plan, run and analyse compute-aware model studies."""

__version__ = "0.1.0"
