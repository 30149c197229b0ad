"""The built-in study: FNO generators for grid-lines ptychography.

``config`` describes a dataset, ``probe`` its illumination, ``simulate`` makes
the data and ``cache`` keeps it; ``models`` the generators, ``train`` fits them,
``study`` runs the grid or IsoFLOP sweep through :mod:`flops_fit.runner`.
"""
