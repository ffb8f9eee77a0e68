"""Selection of structures to label: uncertainty with diversity.

Strategy ``"uncertainty"`` ranks candidates by an acquisition score (the
largest per-atom force σ, optionally mixed with the attention entropy, a
geometric outlier score and the candidate's density), keeps the
``pool_factor × n`` best and picks ``n`` of
them by farthest-point sampling (FPS) in a descriptor space built from the
model's invariant features, so one rare event does not fill a round with
near-duplicates. FPS distances include the already labelled structures.
Strategy ``"random"`` draws ``n`` candidates uniformly (the baseline).

Trust window (DP-GEN's ``f_trust_lo`` / ``f_trust_hi``): with ``sigma_window =
(lo, hi)`` only candidates with ``lo <= sigma_max <= hi`` can be picked, by either
strategy. Below ``lo`` the model is already accurate; above ``hi`` a frame is far
outside the data (for instance a high-temperature distortion that the target
conditions never visit), and labels spent there do little for the region of
interest. Fewer than ``n`` labels are taken when fewer candidates are inside.
A bound may also be relative, ``"pNN"``: the NN-th percentile of the round's
candidates' σ (``(0.0, "p90")`` leaves out the 10 % most uncertain), so the
window needs no system-specific number.

Balance (``balance="source"``, DP-GEN's per-system selection): the ``n`` picks
are shared equally among the exploration trajectories the candidates came from
(``info["source"]``: ``md@300K#0``, ``metad:...``), and each share is chosen
by the strategy among that trajectory's candidates. Uncertainty alone sends most
labels to the hottest trajectory, where σ is largest; balance keeps labels for
the conditions the other explorations stand for.

Density (information density, Settles & Craven 2008): σ alone favours the
tails of the explored distribution, frames that are uncertain because they are
rare. With a density weight β the score adds β · rank(density), the mean
Gaussian similarity of a candidate to the round's other candidates in the
descriptor space, so uncertain frames that stand for many others go first.

Descriptors (:mod:`asecalc.training.al_features`): the model's per-atom
invariant features, per atom when all structures share one composition and
pooled over atoms otherwise (``descriptor="auto"``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from asecalc.training.al_features import model_features, resolve_descriptor

logger = logging.getLogger(__name__)

STRATEGIES = ("uncertainty", "random")
BALANCES = ("none", "source")

#: A trust-window bound: σ in eV/Å, a percentile "pNN" of the candidates' σ, or None.
Bound = float | str | None


def min_distances(images: Sequence[Atoms]) -> np.ndarray:
    """Shortest interatomic distance (Å) of each structure, shape (n_images,)."""
    out = []
    for atoms in images:
        if len(atoms) < 2:
            out.append(np.inf)
            continue
        d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
        out.append(float(d[np.triu_indices(len(atoms), 1)].min()))
    return np.array(out)


def _rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties broken by order)."""
    if len(values) < 2:
        return np.ones(len(values))
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (
        len(values) - 1
    )


def acquisition_scores(
    sigma_max: np.ndarray,
    entropy: np.ndarray | None = None,
    min_distance: np.ndarray | None = None,
    weights: Sequence[float] = (0.0, 0.0, 0.0),
    density: np.ndarray | None = None,
) -> np.ndarray:
    """Rank-based acquisition score of candidates, shape (n_candidates,).

    ``rank(σ_max) + w_attention · rank(entropy) + w_geometry · rank(-d_min)
    + w_density · rank(density)``, ranks scaled to [0, 1], so scores of
    different units can be mixed.

    Parameters
    ----------
    sigma_max : ndarray, shape (n,)
        Largest per-atom force σ of each candidate (eV/Å).
    entropy : ndarray, shape (n,), optional
        Attention entropy (nats); higher means more diffuse attention.
    min_distance : ndarray, shape (n,), optional
        Shortest interatomic distance (Å); shorter is more of an outlier.
    weights : (float, float[, float])
        Weights of the attention-entropy, geometric and density terms (a
        missing density weight is 0).
    density : ndarray, shape (n,), optional
        Representativeness of each candidate (:func:`pool_density`).
    """
    w = (*weights, 0.0, 0.0, 0.0)[:3]
    score = _rank01(np.asarray(sigma_max, float))
    terms = ((entropy, 1.0), (min_distance, -1.0), (density, 1.0))
    for weight, (values, sign) in zip(w, terms, strict=True):
        if weight and values is not None:
            score = score + weight * _rank01(sign * np.asarray(values, float))
    return score


def pool_density(features: np.ndarray) -> np.ndarray:
    """Mean Gaussian similarity of each row to the other rows, shape (n,).

    ``ρ_i = mean_{j≠i} exp(-d_ij² / 2h²)`` with ``d`` the Euclidean distance of
    ``features`` (standardise them first) and the bandwidth ``h`` the median
    pairwise distance. High ρ: a frame like many others of the pool; low ρ: an
    outlier. One row gives ``[1.0]``.

    Parameters
    ----------
    features : ndarray, shape (n, n_features)
    """
    x = np.asarray(features, float)
    if len(x) < 2:
        return np.ones(len(x))
    sq = (x**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    off = ~np.eye(len(x), dtype=bool)
    h2 = float(np.median(d2[off])) or 1.0
    return (np.exp(-d2 / (2.0 * h2)) * off).sum(axis=1) / (len(x) - 1)


def farthest_point_sampling(
    features: np.ndarray,
    n: int,
    first: int = 0,
    reference: np.ndarray | None = None,
) -> list[int]:
    """Greedy farthest-point sampling of ``n`` rows of ``features``.

    Parameters
    ----------
    features : ndarray, shape (n_candidates, n_features)
    n : int
        Number of rows to pick (at most ``n_candidates``).
    first : int
        Row picked first when ``reference`` is None (e.g. the most uncertain).
    reference : ndarray, shape (n_reference, n_features), optional
        Already chosen points (labelled structures): candidates close to them
        are picked last.

    Returns
    -------
    list of int
        Picked row indices, in order.
    """
    features = np.asarray(features, float)
    n = min(int(n), len(features))
    if n <= 0:
        return []
    dist = np.full(len(features), np.inf)
    if reference is not None and len(reference):
        for ref in np.asarray(reference, float):
            dist = np.minimum(dist, np.linalg.norm(features - ref, axis=1))
    picked = [int(first)] if not np.isfinite(dist).all() else [int(np.argmax(dist))]
    for _ in range(n - 1):
        dist = np.minimum(dist, np.linalg.norm(features - features[picked[-1]], axis=1))
        dist[picked] = -1.0
        picked.append(int(np.argmax(dist)))
    return picked


def _percentile(bound: Bound) -> float | None:
    """NN of a bound "pNN" (None for a number); ValueError if malformed."""
    if not isinstance(bound, str):
        return None
    try:
        q = float(bound[1:]) if bound[:1] == "p" else float("nan")
    except ValueError:
        q = float("nan")
    if not 0 <= q <= 100:
        raise ValueError(f"sigma window percentiles are 'p0'...'p100', got {bound!r}")
    return q


def check_sigma_window(window: tuple[Bound, Bound]) -> None:
    """Raise ValueError unless ``window`` is a valid trust window ``(lo, hi)``.

    Each bound is σ in eV/Å (lo >= 0) or a percentile ``"pNN"``; ``hi`` None
    means no upper limit. Two bounds of the same kind must have lo < hi.
    """
    lo, hi = window
    q_lo, q_hi = _percentile(lo), _percentile(hi)
    ok = q_lo is not None or float(lo or 0.0) >= 0
    if q_lo is not None and q_hi is not None:
        ok = ok and q_lo < q_hi
    elif q_lo is None and q_hi is None and hi is not None:
        ok = ok and float(hi) > float(lo or 0.0)
    if not ok:
        raise ValueError(
            f"sigma window must be (lo, hi) with 0 <= lo < hi in eV/Å or as "
            f"percentiles 'pNN' (hi None: no upper limit), got {window}"
        )


def resolve_sigma_window(
    window: tuple[Bound, Bound], sigma: np.ndarray
) -> tuple[float, float]:
    """Absolute (lo, hi) in eV/Å: percentile bounds taken from ``sigma``."""
    bounds = []
    for bound, default in zip(window, (0.0, np.inf), strict=True):
        q = _percentile(bound)
        if q is not None:
            bounds.append(float(np.percentile(sigma, q)) if len(sigma) else default)
        else:
            bounds.append(default if bound is None else float(bound))
    return bounds[0], bounds[1]


def select(
    candidates: Sequence[Atoms],
    n: int,
    strategy: str,
    rng: np.random.Generator,
    calc: Any = None,
    labelled: Sequence[Atoms] = (),
    pool_factor: float = 3.0,
    weights: Sequence[float] = (0.0, 0.0, 0.0),
    sigma_window: tuple[Bound, Bound] = (0.0, None),
    descriptor: str = "auto",
    balance: str = "none",
) -> list[int]:
    """Indices of the ``n`` candidates to label.

    Parameters
    ----------
    candidates : sequence of ase.Atoms
        Exploration frames with ``info["sigma_max"]`` (eV/Å).
    n : int
    strategy : {"uncertainty", "random"}
    rng : numpy.random.Generator
        For the random strategy.
    calc : EformerCalculator, optional
        The current model (descriptors and attention); required for
        ``"uncertainty"``.
    labelled : sequence of ase.Atoms
        Structures already labelled (FPS keeps away from them).
    pool_factor : float
        FPS runs over the ``ceil(pool_factor × n)`` best-scored candidates.
    weights : (float, float, float)
        Extra acquisition weights (attention entropy, geometric outlier,
        density); see :func:`acquisition_scores`.
    sigma_window : (lo, hi)
        Trust window on ``sigma_max``: eV/Å or percentiles ``"pNN"`` of the
        candidates' σ; ``hi=None``: no limit.
    descriptor : {"auto", "pooled", "atoms"}
        FPS descriptor (:mod:`asecalc.training.al_features`); ``"auto"``
        compares atom by atom when candidates and labelled structures share
        one composition.
    balance : {"none", "source"}
        ``"source"``: share ``n`` equally among the candidates' ``info["source"]``
        trajectories (a share a trajectory cannot fill goes to the others).

    Returns
    -------
    list of int
        Indices into ``candidates``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    check_balance(balance)
    check_sigma_window(sigma_window)
    sigma_all = np.array([float(a.info["sigma_max"]) for a in candidates])
    lo, hi = resolve_sigma_window(sigma_window, sigma_all)
    inside = [int(i) for i in np.flatnonzero((sigma_all >= lo) & (sigma_all <= hi))]
    if len(inside) < len(candidates):
        logger.info(
            "trust window %s = [%.4g, %.4g] eV/Å: %d of %d candidates inside",
            sigma_window,
            lo,
            hi,
            len(inside),
            len(candidates),
        )
    groups: dict[str, list[int]] = {"": inside}
    if balance == "source":
        groups = {}
        for i in inside:
            groups.setdefault(str(candidates[i].info.get("source", "")), []).append(i)
        groups = dict(sorted(groups.items()))
    shares = share_out(n, {name: len(members) for name, members in groups.items()})
    chosen: list[int] = []
    for name, members in groups.items():
        picked = _select(
            [candidates[i] for i in members],
            shares[name],
            strategy,
            rng,
            calc,
            [*labelled, *(candidates[i] for i in chosen)],
            pool_factor,
            weights,
            descriptor,
        )
        chosen += [members[i] for i in picked]
    if len(groups) > 1:
        logger.info("picks per source: %s", shares)
    return sorted(chosen)


def check_balance(balance: str) -> None:
    """Raise ValueError unless ``balance`` is one of :data:`BALANCES`."""
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")


def check_selection(
    sigma_window: tuple[Bound, Bound], descriptor: str, balance: str
) -> None:
    """Raise ValueError for a bad trust window, FPS descriptor or balance."""
    check_sigma_window(sigma_window)
    resolve_descriptor(descriptor)
    check_balance(balance)


def share_out(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split ``n`` picks as evenly as possible over groups of the given sizes.

    No group gets more than its size; what a small group cannot take goes to
    the others. The first groups (in ``sizes`` order) take the remainder.
    """
    shares = dict.fromkeys(sizes, 0)
    left = min(int(n), sum(sizes.values()))
    while left > 0:
        open_groups = [g for g in sizes if shares[g] < sizes[g]]
        each = max(left // len(open_groups), 1)
        for g in open_groups:
            take = min(each, sizes[g] - shares[g], left)
            shares[g] += take
            left -= take
    return shares


def _select(
    candidates: Sequence[Atoms],
    n: int,
    strategy: str,
    rng: np.random.Generator,
    calc: Any,
    labelled: Sequence[Atoms],
    pool_factor: float,
    weights: Sequence[float],
    descriptor: str,
) -> list[int]:
    n = min(int(n), len(candidates))
    if n <= 0:
        return []
    if strategy == "random":
        return sorted(int(i) for i in rng.choice(len(candidates), n, replace=False))
    if calc is None:
        raise ValueError("strategy 'uncertainty' needs the model calculator (calc=...)")
    sigma = np.array([float(a.info["sigma_max"]) for a in candidates])
    descriptor = resolve_descriptor(descriptor, candidates, labelled)
    features = model_features(calc, list(candidates), descriptor=descriptor)
    rho = None
    if len(weights) > 2 and weights[2]:
        every = features["descriptors"]
        rho = pool_density(every / (every.std(axis=0) + 1e-12))
    scores = acquisition_scores(
        sigma, features["attention_entropy"], min_distances(candidates), weights, rho
    )
    pool = np.argsort(-scores, kind="stable")[: max(n, int(np.ceil(pool_factor * n)))]
    reference = (
        model_features(calc, list(labelled), descriptor=descriptor)["descriptors"]
        if labelled
        else None
    )
    desc = features["descriptors"][pool]
    scale = desc.std(axis=0) + 1e-12  # standardise feature channels
    ref = None if reference is None else reference / scale
    picked = farthest_point_sampling(desc / scale, n, first=0, reference=ref)
    return [int(pool[i]) for i in picked]
