"""The siamese pair head on each query's shortlist (whaleflow.families.pair_shortlist): against
brute force on small inputs, and a count of head evaluations that catches a return to Q·G."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from whaleflow.families.pair_shortlist import shortlisted_scores, use_shortlist
from whaleflow.inference import aggregate_by_class
from whaleflow.models.pair_head import PairHead

D = 12


def count_pairs(head: PairHead) -> list[int]:
    """Record the pairs ``head`` scores by any entry point (forward, score_matrix, score_indexed
    all end in ``_combine`` with one row of first-layer activations per pair)."""
    seen: list[int] = []
    combine = head._combine

    def counting(s, u):
        seen.append(s.numel() // s.shape[-1])
        return combine(s, u)

    head._combine = counting
    return seen


def _head() -> PairHead:
    """A head that prefers close features (−|x−y| dominates) plus a little of everything else, so
    the cosine shortlist usually but not always holds the head's own best classes."""
    torch.manual_seed(0)
    h = PairHead(D, hidden=())
    with torch.no_grad():
        h.sym.weight.normal_(0, 0.05)
        h.diff.weight.normal_(0, 0.05)
        h.sym.weight[0, 2 * D:] -= 1.0  # the |x−y| block
    return h.eval()


def _data(q: int, classes: int, seed: int = 0):
    """Per-view features: each class a centre, its 1–5 photos and the queries noisy copies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, D)).astype(np.float32)
    labels = np.repeat(np.arange(classes), rng.integers(1, 6, classes))
    q_cls = rng.integers(0, classes, q)
    views_q, views_g = {}, {}
    for f in (False, True):
        views_g[f] = (centres[labels] + 0.6 * rng.normal(size=(len(labels), D))).astype(np.float32)
        views_q[f] = (centres[q_cls] + 0.6 * rng.normal(size=(q, D))).astype(np.float32)
    return views_q, views_g, labels


def _full(q, g, labels, classes, head, how="max"):
    """Brute force: the head on every query × gallery pair, views averaged, then per class."""
    with torch.no_grad():
        probs = np.mean([torch.sigmoid(head(torch.as_tensor(q[f]).repeat_interleave(len(g[f]), 0),
                                            torch.as_tensor(g[f]).repeat(len(q[f]), 1))).reshape(len(q[f]), -1)
                         .numpy() for f in q], axis=0)
    return aggregate_by_class(probs, labels, classes, how)


def _cos_top(q, g, labels, classes, m):
    cos = sum((q[f] / np.linalg.norm(q[f], axis=1, keepdims=True))
              @ (g[f] / np.linalg.norm(g[f], axis=1, keepdims=True)).T for f in q)
    by_class = aggregate_by_class(cos, labels, classes, "max")
    return np.argsort(-by_class, axis=1)[:, :m]


@pytest.mark.parametrize("how", ["max", "mean"])
def test_shortlisted_scores_match_brute_force(how):
    """Shortlisted classes get exactly the full head's score, every other class a floor below
    them; where the true top 5 lie inside the shortlist, the top 5 is the true one."""
    classes, m = 40, 12
    q, g, labels = _data(30, classes)
    head = _head()
    full = _full(q, g, labels, classes, head, how)
    short = shortlisted_scores(q, g, labels, classes, head, shortlist=m, how=how)
    assert short.shape == full.shape and short.dtype == np.float32
    top = _cos_top(q, g, labels, classes, m)
    inside = 0
    for i in range(len(full)):
        sl = np.zeros(classes, bool)
        sl[top[i]] = True
        np.testing.assert_allclose(short[i, sl], full[i, sl], rtol=1e-5, atol=1e-6)
        assert short[i, ~sl].max() < short[i, sl].min() and np.ptp(short[i, ~sl]) == 0
        true5 = np.argsort(-full[i])[:5]
        if sl[true5].all():
            inside += 1
            assert list(np.argsort(-short[i], kind="stable")[:5]) == list(true5)
    assert 10 <= inside < len(full)  # both cases occur: the check above is not vacuous
    assert ((0 <= short) & (short <= 1)).all()  # still probability-like for the normaliser


def test_shortlist_of_every_class_is_exact():
    """With M at least the gallery's classes, the shortlisted scores are the brute-force ones
    (the family itself then takes its unchanged full path: use_shortlist is false)."""
    classes = 15
    q, g, labels = _data(9, classes, seed=1)
    head = _head()
    np.testing.assert_allclose(shortlisted_scores(q, g, labels, classes, head, shortlist=classes),
                               _full(q, g, labels, classes, head), rtol=1e-5, atol=1e-6)
    assert not use_shortlist(classes, labels) and use_shortlist(classes - 1, labels)
    assert not use_shortlist(0, labels) and not use_shortlist(None, labels)


def test_head_evaluations_do_not_grow_with_the_gallery():
    """Head evaluations are queries × the photos of M classes, not queries × gallery: the same
    count for a gallery four times larger (3 photos per class both times)."""
    m, n_q, head = 6, 8, _head()
    seen, counts = count_pairs(head), []
    for classes in (50, 200):
        rng = np.random.default_rng(classes)
        labels = np.repeat(np.arange(classes), 3)
        g = {f: rng.normal(size=(len(labels), D)).astype(np.float32) for f in (False, True)}
        q = {f: rng.normal(size=(n_q, D)).astype(np.float32) for f in (False, True)}
        seen.clear()
        shortlisted_scores(q, g, labels, classes, head, shortlist=m)
        counts.append(sum(seen))
        _full(q, g, labels, classes, head)
        assert sum(seen) - counts[-1] == 2 * n_q * len(labels)  # the counter sees the brute force too
    assert counts == [2 * n_q * m * 3] * 2  # two views


# --------------------------------------------------------------------------- the siamese family
def test_siamese_family_shortlists_above_the_setting_only(tiny_data, tmp_path):
    """The family's test scores: the default (200 ≥ the tiny set's classes) is bit for bit the full
    Q·G scoring; a shortlist of 5 keeps the full scores of 5 classes per query, floors the rest
    and evaluates the head on far fewer pairs."""
    from whaleflow.config import load_config
    from whaleflow.pipeline import run_prepare
    from whaleflow.training import build_task

    cfg = load_config("configs/demo.yaml", [
        f"data.root={tiny_data}", f"output.dir={tmp_path}", "output.quiet=true", "models.0.family=siamese",
        "models.0.stages=[{size: 32, epochs: 1, lr: 0.002}]"])
    prepared = run_prepare(cfg, progress=False)
    task = build_task(cfg, cfg.models[0], prepared)
    task.setup_stage(cfg.models[0].stages[0], fresh=True)
    g_rows, g_labels, classes = task.labelled_gallery(("train", "val"))
    q_rows = task.splits["test"].rows[:12]
    assert len(np.unique(g_labels)) > 5 and cfg.predict.pair_shortlist == 200

    seen = count_pairs(task.model["head"])
    default = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    task.predict_cfg = dataclasses.replace(cfg.predict, pair_shortlist=0)
    full = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    np.testing.assert_array_equal(default, full)
    views = len(task.views)
    assert sum(seen) == 2 * views * len(q_rows) * len(g_rows)  # both: every query × gallery pair

    seen.clear()
    task.predict_cfg = dataclasses.replace(cfg.predict, pair_shortlist=5)
    short = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    assert 0 < sum(seen) < views * len(q_rows) * len(g_rows) / 2
    for i in range(len(q_rows)):
        floor = short[i].min()
        kept = short[i] > floor
        assert kept.sum() == 5
        np.testing.assert_allclose(short[i, kept], full[i, kept], rtol=1e-4, atol=1e-6)


def test_score_indexed_is_forward_on_the_listed_pairs():
    """PairHead.score_indexed (linear terms per vector, gathered) equals forward on the pairs,
    whatever the batch size, with hidden layers and both symmetries."""
    torch.manual_seed(3)
    xa, xb = torch.randn(7, D), torch.randn(11, D)
    ia, ib = torch.randint(0, 7, (40,)), torch.randint(0, 11, (40,))
    for symmetric in (True, False):
        head = PairHead(D, hidden=(16, 8), symmetric=symmetric).eval()
        with torch.no_grad():
            want = head(xa[ia], xb[ib])
            for batch in (1, 7, 64):
                torch.testing.assert_close(head.score_indexed(xa, xb, ia, ib, batch_size=batch), want,
                                           rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_pair_shortlist_setting_is_checked(bad):
    from whaleflow.config import ConfigError, PredictConfig

    assert PredictConfig().pair_shortlist == 200 and PredictConfig(pair_shortlist=0).pair_shortlist == 0
    with pytest.raises(ConfigError, match="predict.pair_shortlist"):
        PredictConfig(pair_shortlist=bad)
