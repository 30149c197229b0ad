"""The built-in study: FNO generators for grid-lines ptychography.

``simulate`` makes the data, ``models`` the generators, ``train`` fits them,
``study`` runs the grid or IsoFLOP sweep through :mod:`flops_fit.runner`.
"""
