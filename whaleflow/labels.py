"""Labels with a fixed meaning across every data set whaleflow reads.

Inside whaleflow one label, :data:`NEW_WHALE`, marks "an individual not among the
known ones", whatever the data set. Each layout spells it its own way in the files a
person reads and writes (``new_whale`` in HWI, ``new_individual`` in Happywhale):
:func:`new_label` gives that spelling, and the catalog and the submission writer
translate at the boundary, so nothing in between has to know the layout.
"""
from __future__ import annotations

#: The label for "an individual not among the known ones". In HWI it marks both
#: training photos of individuals seen once and test photos of unseen individuals;
#: it is never a training class because it carries no shared appearance.
NEW_WHALE = "new_whale"

#: layout → how that layout's files spell "a new individual"
NEW_LABELS = {
    "kaggle": "new_whale",
    "happywhale": "new_individual",
    "individual": "new_individual",
}


def new_label(layout: str | None) -> str:
    """The layout's own spelling of the new-individual label (HWI's for an unknown layout)."""
    return NEW_LABELS.get(layout or "kaggle", NEW_WHALE)
