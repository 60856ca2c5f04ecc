"""The ``mining:`` section of a siamese model: when and how LAP hard-example mining runs.

Registered as the model config section ``mining`` (:data:`whaleflow.registry.MODEL_SECTIONS`);
read by the siamese family (:mod:`whaleflow.families.siamese`), :func:`~whaleflow.mining.build_miner`
and the Ray MiningActor.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import MODEL_SECTIONS


@MODEL_SECTIONS.register("mining")
@dataclass(frozen=True)
class MiningConfig:
    """LAP hard-example mining for the siamese family (the config reference for ``mining:``).

    Schedule: epochs before ``start`` train on random pairs (warm-up); from ``start``
    on a round every ``every`` epochs scores all training pairs and solves the
    assignments; a round that would fall on the first epoch of a new image-size stage
    moves to the next epoch (the new size and the new pairs do not arrive together).
    In every mined epoch ``random_share`` of each batch's positives and negatives are
    still random pairs (0.5 by default: mined afresh every epoch, a model pushes one
    round's negatives apart while the previous ones drift back, and validation see-sawed
    at 0.2; ``benchmarks/mining_ablation.py``). ``solver: none`` never mines: random pairs only (the control
    of ``benchmarks/mining_ablation.py``). The sparse solver's candidates are each image's
    ``k`` best partners by head logit among all others (N²/2 head evaluations a round: seconds on a
    GPU at HWI size, hours on a CPU) or, with ``prefilter`` > 0, among its ``prefilter`` nearest
    images by feature cosine (N·prefilter evaluations, :mod:`whaleflow.mining.cosine_prefilter`).
    Off by default because it costs accuracy: 200 individuals, two seeds, ``prefilter: 200`` gave
    validation MAP@5 0.678 against 0.693 with every pair (test 0.636 against 0.640; random pairs
    0.668 / 0.627). Turn it on for a CPU run of tens of thousands of photos.

    Noise: Gaussian noise added to the score matrix before solving, in its units —
    the pair head's logits (a logit of 0 is probability 0.5). Its std starts at
    ``noise_start`` at the first mining round, moves to ``noise_end`` over
    ``noise_epochs`` epochs counted from ``start`` (``noise_shape``: linear or
    cosine), and never goes below ``noise_floor`` (> 0: the assignment is never the
    bare argmax, so the hardest-looking pair, often label noise, is not picked every
    round). σ = 1 lets a candidate whose logit is about 1–2 below a row's best still
    be chosen; σ ≥ 3 is close to random pairs.

    Duplicates: images of the same near-duplicate group are never each other's
    negatives; a group holding several individuals (a label conflict) keeps those
    individuals out of each other's negatives altogether, mined or random.
    ``mirror_negatives: false`` keeps an individual's flipped twin out of its *mined*
    negatives (flips stay new individuals everywhere else): on near-symmetric flukes
    the mirror twin is the hardest negative of most images and would take many of
    the mined slots for a distinction no query asks for.
    """

    solver: str = "dense"             # dense | sparse | none (random pairs only)
    every: int = 2                    # a mining round every K epochs
    start: int = 4                    # first mining epoch; before it pairs are random (warm-up)
    random_share: float = 0.5         # share of random pairs kept in every mined batch (0 ≤ x < 1)
    hard_positives: bool = True       # positives by the least-similar assignment inside each individual
    mirror_negatives: bool = True     # may an image's own individual, flipped, be mined as its negative
    k: int = 50                       # candidates per image for the sparse solver
    prefilter: int = 0                # sparse: the head scores each image's this many cosine neighbours (0: all pairs)
    noise_start: float = 2.0          # noise std (logits) at the first round
    noise_end: float = 1.0            # noise std (logits) after noise_epochs
    noise_epochs: int = 20            # epochs (from start) over which the std moves to noise_end
    noise_floor: float = 0.5          # the std never goes below this (logits, > 0)
    noise_shape: str = "linear"       # linear | cosine
    block_size: int = 1024

    def __post_init__(self):
        if int(self.prefilter) != 0 and int(self.prefilter) < int(self.k):
            raise ConfigError(f"mining prefilter {self.prefilter} is below mining k {self.k}: the head would see fewer "
                              "neighbours than it keeps. Fix: set prefilter to 0 (every pair) or at least k (e.g. 4·k).")
