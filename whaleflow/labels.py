"""Labels with a fixed meaning across every data set whaleflow reads."""
from __future__ import annotations

#: The label for "an individual not among the known ones". In HWI it marks both
#: training photos of individuals seen once and test photos of unseen individuals;
#: it is never a training class because it carries no shared appearance.
NEW_WHALE = "new_whale"
