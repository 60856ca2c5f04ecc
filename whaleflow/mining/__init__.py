"""Hard-example mining for the siamese family: LAP on pair scores, dense and sparse.

* :mod:`.dense` — ``hard_negatives`` / ``hard_positives`` on an N×N score matrix
  (scipy ``linear_sum_assignment``).
* :mod:`.sparse` — the same from features with k-NN candidates and a sparse
  assignment solver, at N ≈ 16,000 in seconds; also on a score matrix (top-k).
* :mod:`.candidates` — each image's top-k candidate partners scored on the device
  (each unordered pair once), what a sparse round sends to the actor instead of
  N×N; :mod:`.candidate_lap` — the sparse LAP on them.
* :mod:`.pair_scoring` — a pair head applied to all pairs in blocks, to chosen pairs, or
  to each image's k nearest neighbours.
* :mod:`.noise` — the annealed noise schedule (with a floor); :mod:`.schedule` —
  which epochs mine (warm-up, every K, never on a stage change); :mod:`.exclusion` —
  which images may be negatives of each other (individuals merged through
  near-duplicate groups); :mod:`.miner` — ``LapMiner``, the object the trainer
  calls, and ``build_miner(cfg.mining)``; :mod:`.mining_config` — the ``mining:`` section itself.
"""
from .candidate_lap import hard_negatives_from_candidates, hard_positives_from_candidates
from .candidates import PairCandidates, score_candidates
from .dense import NO_PARTNER, hard_negatives, hard_positives
from .knn import knn_other
from .exclusion import negative_codes, virtual_codes
from .mining_config import MiningConfig  # registers the model config section "mining"
from .miner import LapMiner, MinedPairs, build_miner, mining_enabled, mining_noise
from .noise import NoiseSchedule
from .schedule import MiningSchedule
from .pair_scoring import head_scores_fn, score_all_pairs, score_blocks, score_knn, score_pairs
from .sparse import hard_positives_from_features, sparse_hard_negatives, sparse_hard_negatives_from_scores

__all__ = [
    "NO_PARTNER",
    "LapMiner",
    "MinedPairs",
    "MiningConfig",
    "MiningSchedule",
    "NoiseSchedule",
    "PairCandidates",
    "hard_negatives_from_candidates",
    "hard_positives_from_candidates",
    "score_candidates",
    "build_miner",
    "mining_enabled",
    "mining_noise",
    "negative_codes",
    "virtual_codes",
    "hard_negatives",
    "hard_positives",
    "hard_positives_from_features",
    "head_scores_fn",
    "knn_other",
    "score_all_pairs",
    "score_blocks",
    "score_knn",
    "score_pairs",
    "sparse_hard_negatives",
    "sparse_hard_negatives_from_scores",
]
