"""Model families, registered by name in ``whaleflow.registry.FAMILIES``.

``metric``: embedding net with margin loss (approach 2); ``siamese``: backbone +
pair head with LAP hard-example mining (approach 1); ``arcface``: sub-center ArcFace
with dynamic margins, head scores blended with gallery k-NN (approach 4). Approach 3 (classifier on
embeddings) trains at ensemble time from the other families' embeddings.
"""
from . import arcface, frozen, metric, siamese  # noqa: F401  (registration)
from .base import FamilyTask

__all__ = ["FamilyTask", "needs_mining_actor"]


def needs_mining_actor(model_cfg) -> bool:
    """Whether a trial of ``model_cfg`` needs a mining service: its family's answer
    (:meth:`FamilyTask.needs_mining_actor`), so callers such as ``ray_jobs`` name no family."""
    from ..registry import FAMILIES

    return bool(FAMILIES.get(model_cfg.family).needs_mining_actor(model_cfg))
