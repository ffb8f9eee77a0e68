"""λ quadrature rules on [0, 1] for thermodynamic integration.

Private helper of :mod:`analysis.ti` (re-exported there).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray


class Quadrature(NamedTuple):
    """λ nodes and weights of a quadrature rule on [0, 1].

    Attributes
    ----------
    nodes : ndarray, shape (n_lambdas,)
        Coupling parameters λ (dimensionless).
    weights : ndarray, shape (n_lambdas,)
        Weights; ``ΔF = Σ weights · ⟨dU/dλ⟩``.
    """

    nodes: NDArray[np.float64]
    weights: NDArray[np.float64]


def gauss_legendre(n_lambdas: int) -> Quadrature:
    """Gauss–Legendre rule with ``n_lambdas`` nodes mapped to [0, 1].

    Exact for integrands that are polynomials of degree ``2 n − 1``; the end
    points (often the hardest windows) are never sampled.
    """
    if not isinstance(n_lambdas, int | np.integer) or n_lambdas < 1:
        raise ValueError(f"n_lambdas must be a positive integer, got {n_lambdas!r}")
    x, w = np.polynomial.legendre.leggauss(int(n_lambdas))
    return Quadrature(0.5 * (x + 1.0), 0.5 * w)


def trapezoid(lambdas: ArrayLike) -> Quadrature:
    """Trapezoid rule on a user grid that starts at 0 and ends at 1."""
    nodes = np.sort(np.asarray(lambdas, dtype=float))
    if nodes.ndim != 1 or nodes.size < 2 or nodes[0] != 0.0 or nodes[-1] != 1.0:
        raise ValueError(
            f"a trapezoid grid must be 1-D, start at 0 and end at 1, got {nodes}; "
            "add the end points or use gauss_legendre(n)"
        )
    if np.any(np.diff(nodes) <= 0):
        raise ValueError(f"λ grid has repeated values: {nodes}")
    weights = np.zeros_like(nodes)
    weights[1:] += 0.5 * np.diff(nodes)
    weights[:-1] += 0.5 * np.diff(nodes)
    return Quadrature(nodes, weights)


def as_quadrature(lambdas: Quadrature | ArrayLike | int) -> Quadrature:
    if isinstance(lambdas, Quadrature):
        return lambdas
    if isinstance(lambdas, int | np.integer):
        return gauss_legendre(int(lambdas))
    if isinstance(lambdas, tuple) and len(lambdas) == 2 and np.ndim(lambdas[0]) == 1:
        return Quadrature(np.asarray(lambdas[0], float), np.asarray(lambdas[1], float))
    return trapezoid(lambdas)
