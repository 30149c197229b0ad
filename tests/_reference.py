"""External reference values the numerical tests check against, with their provenance.

CHINCHILLA: the parametric loss L(N, D) = E + A / N**alpha + B / D**beta fitted by
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Approach 3, eq. (10): E = 1.69, A = 406.4, B = 410.7,
alpha = 0.34, beta = 0.28. The frontier exponents follow from their eq. (4):
N* ~ C**a and D* ~ C**b with a = beta / (alpha + beta), b = alpha / (alpha + beta).
"""

from __future__ import annotations

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_EXPONENTS = {
    "a": CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"]),
    "b": CHINCHILLA["alpha"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"]),
}
