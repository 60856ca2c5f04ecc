"""Model families, registered by name in :data:`FAMILIES` (``whaleflow.registry.FAMILIES``).

``metric``: embedding net with margin loss (approach 2); ``siamese``: backbone +
pair head with LAP hard-example mining (approach 1); ``arcface``: sub-center ArcFace
with dynamic margins, head scores blended with gallery k-NN (approach 4); ``frozen``: the
pretrained network's k-NN. Approach 3 (classifier on embeddings) trains at ensemble time from
the other families' embeddings.

A family is one module: its FamilyTask class registered in :data:`FAMILIES`, declaring the
config sections it reads (``SECTIONS``, each a dataclass registered in :data:`MODEL_SECTIONS`)
and the model fields only it reads (``MODEL_FIELDS``). Callers such as ``ray_jobs`` ask these
declarations (:func:`mining_settings`) and name no family.
"""
from ..registry import FAMILIES, MODEL_SECTIONS
from . import arcface, frozen, metric, siamese  # noqa: F401  (registration)
from .base import FamilyTask

__all__ = ["FAMILIES", "MODEL_SECTIONS", "FamilyTask", "mining_settings"]


def mining_settings(model_cfg):
    """The ``mining`` section a trial of ``model_cfg`` mines with, or None: its family reads no
    mining section, or the section's solver is ``none`` (random pairs, no miner, no MiningActor)."""
    from ..mining import mining_enabled

    if "mining" not in FAMILIES.sections(model_cfg.family):
        return None
    return model_cfg.mining if mining_enabled(model_cfg.mining) else None

