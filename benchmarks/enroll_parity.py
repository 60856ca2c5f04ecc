"""Does enrolment find new individuals, and does it cost the catalogue's own matches?

Copies a trained run (default ``runs/demo``, from ``make demo``), enrolls the individuals
of another ``whaleflow synth`` seed with two photos each (``whaleflow enroll``), then, with
the near-duplicate rule off, identifies (a) the run's own test photos before and after,
(b) the newcomers' other photos (distinct sightings, not copies of the enrolled ones), and
prints top-1 and MAP@5 of each, the share of the run's photos a newcomer now comes first
for, and, as a like-for-like reference, the run's test photos of individuals with exactly
two labelled photos.

    .venv/bin/python benchmarks/enroll_parity.py [RUN_DIR] [--seed 23] [--individuals 60]
"""
import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whaleflow.data.synthetic import generate_synthetic  # noqa: E402
from whaleflow.identify import enroll, identify, load_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo")
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--individuals", type=int, default=60)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enroll_parity_"))
    run, root = work / "run", work / "newcomers"
    shutil.copytree(args.run, run, symlinks=True)
    size = load_run(run, device="cpu").cfg.data.synthetic
    generate_synthetic(root, individuals=args.individuals, seed=args.seed, width=size.image_width, height=size.image_height)
    train = pd.read_csv(root / "train.csv")
    known = train[train.Id != "new_whale"]
    counts = known.Id.value_counts()
    inds = {i: [str(root / "train" / im) for im in known.loc[known.Id == i, "Image"]] for i in counts[counts >= 3].index}
    rows = []
    for k, (ind, ph) in enumerate(inds.items()):
        rows += [{"image": f"{k}a.jpg", "path": ph[0], "decision": "new", "id": f"zz_{ind}"},
                 {"image": f"{k}b.jpg", "path": ph[1], "decision": "accept", "id": f"zz_{ind}"}]
    dec = root / "dec.csv"; pd.DataFrame(rows).to_csv(dec, index=False)
    tr0 = load_run(run, device="cpu")
    droot = Path(tr0.cfg.data.root)
    tests = sorted((droot / "test").glob("*.jpg"))
    ans = pd.read_csv(droot / "answers.csv"); truth = dict(zip(ans.Image, ans.Id))
    def score(frame, truth):
        top1, m = [], []
        for im, p in zip(frame["image"], frame["predictions"]):
            t = p.split(); top1.append(t[0] == truth[im]); m.append(1 / (t.index(truth[im]) + 1) if truth[im] in t else 0)
        return np.mean(top1), np.mean(m)
    nodup = lambda tr: dataclasses.replace(tr.cfg, predict=dataclasses.replace(tr.cfg.predict, use_duplicates=False))
    tr0.cfg = nodup(tr0)
    before = identify(tr0, tests, out=None, page=False, boxes=droot / "boxes.csv").frame
    enroll(run, dec, boxes=root / "boxes.csv", device="cpu")
    tr = load_run(run, device="cpu"); tr.cfg = nodup(tr)
    after = identify(tr, tests, out=None, page=False, boxes=droot / "boxes.csv").frame
    q, qt = [], {}
    for ind, ph in inds.items():
        for p in ph[2:]:
            q.append(p); qt[Path(p).name] = f"zz_{ind}"
    newf = identify(tr, q, out=None, page=False, boxes=root / "boxes.csv").frame
    stolen = np.mean([p.split()[0].startswith("zz_") for p in after["predictions"]])
    print(f"enrolled {len(inds)} newcomers x 2 photos; {len(q)} distinct sightings of them; {len(tests)} run test photos")
    print("run test photos before enroll: top1 %.3f MAP@5 %.3f" % score(before, truth))
    print("run test photos after enroll:  top1 %.3f MAP@5 %.3f; newcomer first for %.3f" % (*score(after, truth), stolen))
    # known queries whose individual has exactly 2 labelled photos, as a like-for-like reference
    lab = pd.read_csv(droot / "train.csv"); n = lab.Id.value_counts()
    two = [im for im in after["image"] if truth[im] != "new_whale" and n.get(truth[im], 0) == 2]
    sub = after[after["image"].isin(two)]
    print("run test photos of individuals with 2 labelled photos (%d): top1 %.3f MAP@5 %.3f" % (len(sub), *score(sub, truth)))
    print("newcomer sightings: top1 %.3f MAP@5 %.3f" % score(newf, qt))
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
