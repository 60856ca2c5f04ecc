"""Model families, registered by name in ``whaleflow.registry.FAMILIES``.

``metric``: embedding net with margin loss (approach 2); ``siamese``: backbone +
pair head with LAP hard-example mining (approach 1). Approach 3 (classifier on
embeddings) trains at ensemble time from the other families' embeddings.
"""
from . import metric, siamese  # noqa: F401  (registration)
from .base import FamilyTask

__all__ = ["FamilyTask"]
