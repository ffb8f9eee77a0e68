"""Settings of the DiaSL controller (torch-free, so ``eformer --help`` stays fast).

Re-exported as :class:`asecalc.training.diasl.DiaSLConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

GROWTH_RULES = ("stall", "laws")
SCHEDULES = ("wsd", "cosine")


@dataclass(frozen=True)
class DiaSLConfig:
    """Settings of the DiaSL controller.

    Attributes
    ----------
    gain_threshold : float
        Act when ``-d ln L / d ln C`` of the recent validation loss is below this.
    window, min_points : int
        Fewest validation points in the marginal-gain fit; points needed
        after an action (and after the start) before the next one.
    window_span : float
        Compute ratio the marginal-gain fit spans: it uses every point of the
        current phase with ``C >= C_last / window_span`` (at least
        ``window`` points), and acts only once the phase itself spans that
        ratio. The elasticity is a slope in ``ln C``, so its noise falls with
        the ``ln C`` range fitted: on rMD17 aspirin, five consecutive points
        (every 100 steps, a span of 1.15 in C) gave elasticities from 0 to
        0.85 around a true 0.58 (2 % noise per validation), and one uptick
        triggered an action while the loss still fell fast; over a span of 2
        the same curve reads 0.50-0.58. ``1.0`` restores the fixed window of
        ``window`` points.
    gap_threshold : float
        Add data when ``(L_val - L_train) / L_val`` exceeds this (without laws).
    initial_fraction, slice_fraction : float
        Training pool fraction to start with, and to add per data action.
    max_layers, max_width_factor : int
        Growth limits (attention blocks; MLP width multiple of the start).
    anneal_fraction : float
        Final fraction of the budget with cosine learning-rate decay (no actions).
    rewarm_steps : int
        Linear learning-rate warm-up after the start and after each action.
    flops_batches : int
        Batches on which the FLOPs per step are counted after each change.
    train_probe : int
        Training structures (spread evenly over the current training set) on
        which the training loss of the gap is measured. On the GFN2-xTB
        database (molecules and 96-atom water boxes) the first 64 structures
        read a loss of 1.08 where the whole 623-structure training set read
        0.52 (validation 0.85): the gap came out −0.28 instead of +0.39 and
        the controller grew the model where it should have added data.
    growth : str
        When to grow the model. ``"stall"``: when the marginal gain stalls and
        the gap (or the joint law) says capacity limits. ``"laws"``: at the
        validation where the fitted ``L(P, steps)`` law of the sweep
        (``--laws``) predicts the lowest final loss for growing then, whether
        or not the gain has stalled (:mod:`~._diasl_laws`); stalls then only
        add data. On rMD17 aspirin at 1e13 FLOPs the small model never
        stalled although the next size would have reached a lower loss.
    schedule : str
        Learning-rate multiplier over the budget: ``"wsd"`` (constant, then
        cosine decay over the last ``anneal_fraction``) or ``"cosine"`` (one
        cosine over the whole budget, as a fixed run's). Either way it
        re-warms over ``rewarm_steps`` after each action.
    """

    gain_threshold: float = 0.1
    window: int = 5
    min_points: int = 4
    window_span: float = 2.0
    gap_threshold: float = 0.3
    initial_fraction: float = 0.25
    slice_fraction: float = 0.25
    max_layers: int = 4
    max_width_factor: int = 4
    anneal_fraction: float = 0.2
    rewarm_steps: int = 20
    flops_batches: int = 3
    train_probe: int = 512
    growth: str = "stall"
    schedule: str = "wsd"

    def __post_init__(self) -> None:
        for name, allowed in (("growth", GROWTH_RULES), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        if not self.window_span >= 1:  # also refuses NaN
            raise ValueError(
                f"window_span must be >= 1 (a compute ratio), got {self.window_span}"
            )
