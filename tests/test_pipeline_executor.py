"""One pipeline, two executors: the steps in order, resume, the fitted blend's file, and the
family facts the ensemble and identify read instead of family names."""
import dataclasses
import json
import types

import numpy as np
import pytest

import whaleflow.pipeline as pipeline_mod
import whaleflow.pseudo_label as pseudo_mod
from whaleflow.config import load_config
from whaleflow.ensemble.fitted_blend import WEIGHTS_FILE, FittedBlend
from whaleflow.ensemble.normalize import ScoreNormalizer
from whaleflow.errors import DataError
from whaleflow.executor import Executor
from whaleflow.local_executor import LocalExecutor
from whaleflow.pipeline import ENSEMBLE_STEPS, STEPS, TRAIN_STEPS, run_pipeline


class Recording(Executor):
    """Records each operation the pipeline asks of it; trains and blends nothing."""

    def __init__(self):
        self.calls = []

    def start(self, cfg, *, progress=True):
        self.calls.append("start")
        return cfg

    def session(self, cfg, *, progress=True):
        import contextlib

        calls = self.calls

        @contextlib.contextmanager
        def session():
            calls.append("session")
            yield
            calls.append("end session")

        return session()

    def preflight(self, cfg, steps):
        self.calls.append("preflight")

    def train(self, cfg, prepared, timings, *, resume=True, progress=True):
        self.calls.append(("train", cfg.output.dir, prepared))
        timings["train_x_s"] = 1.0
        return {"finished": 1}

    def final_fit(self, cfg, prepared, timings, *, progress=True):
        self.calls.append(("final_fit", cfg.output.dir, prepared))
        return {"final_fits": 1}

    def ensemble(self, cfg, *, test_duplicates=None, progress=True):
        self.calls.append(("ensemble", cfg.output.dir, test_duplicates))
        return {"val_map5": 0.5}


@pytest.fixture
def fake_steps(monkeypatch, tmp_path):
    """The pipeline's own steps (prepare, load, rounds, finalize) recorded instead of run."""
    seen = []
    prepared = types.SimpleNamespace(test_duplicates={"t.jpg": ["w1"]}, name="prepared")

    def run_prepare(cfg, progress=True):
        seen.append("prepare")
        return prepared

    def load_run_prepared(cfg):
        seen.append("load prepared")
        return prepared

    def finalize(cfg, prep, ensemble, timings, progress=True):
        seen.append(("finalize", prep is prepared, dict(ensemble), sorted(timings)))
        return {"finalized": True}

    def run_rounds(cfg, ensemble, train_round, progress=True):
        seen.append("rounds")
        rdir = tmp_path / "pseudo" / "round_1"
        cfg_r = cfg.replace(output=dataclasses.replace(cfg.output, dir=str(rdir)))
        return {**ensemble, "pseudo_rounds": [train_round(cfg_r, rdir)]}

    monkeypatch.setattr(pipeline_mod, "run_prepare", run_prepare)
    monkeypatch.setattr(pipeline_mod, "load_run_prepared", load_run_prepared)
    monkeypatch.setattr(pipeline_mod, "finalize", finalize)
    monkeypatch.setattr(pseudo_mod, "run_rounds", run_rounds)
    monkeypatch.setattr(pseudo_mod, "with_pseudo_labels", lambda prep, path: ("with labels", path.parent.name))
    return seen, prepared


def _cfg(tmp_path, *extra):
    return load_config("configs/demo.yaml", [f"output.dir={tmp_path}", "output.quiet=true", *extra])


def test_the_steps_run_in_order_each_by_the_executor(fake_steps, tmp_path):
    seen, prepared = fake_steps
    ex = Recording()
    run = run_pipeline(_cfg(tmp_path, "train.final_fit=true", "pseudo_label.rounds=1"), ex, progress=False)
    out, rdir = str(tmp_path), str(tmp_path / "pseudo" / "round_1")
    view = ("with labels", "round_1")
    assert ex.calls == ["start", "session", "preflight",
                        ("train", out, prepared), ("final_fit", out, prepared), ("ensemble", out, {"t.jpg": ["w1"]}),
                        ("train", rdir, view), ("final_fit", rdir, view), ("ensemble", rdir, {"t.jpg": ["w1"]}),
                        "end session"]
    assert seen[0] == "prepare" and seen[1] == "rounds"
    # finalize after the session, with the executor's timing keys and the pipeline's own
    assert seen[2][0] == "finalize" and seen[2][1]
    assert seen[2][3] == ["ensemble_s", "prepare_s", "pseudo_rounds_s", "total_s", "train_x_s"]
    assert run.trained == {"finished": 1} and run.final == {"final_fits": 1}
    assert run.summary == {"finalized": True} and run.ensemble["pseudo_rounds"] == [{"val_map5": 0.5}]


def test_steps_left_out_are_not_run(fake_steps, tmp_path):
    seen, prepared = fake_steps
    ex = Recording()
    run = run_pipeline(_cfg(tmp_path, "train.final_fit=false", "pseudo_label.rounds=1"), ex, steps=TRAIN_STEPS,
                       progress=False)
    assert [c if isinstance(c, str) else c[0] for c in ex.calls] == ["start", "session", "preflight", "train",
                                                                      "end session"]
    assert seen == ["prepare"] and run.summary is None and run.ensemble is None
    with pytest.raises(ValueError, match="unknown pipeline steps"):
        run_pipeline(_cfg(tmp_path), Recording(), steps=("prepare", "deploy"))


def test_ensemble_steps_read_the_prepared_folder_when_there(fake_steps, tmp_path):
    seen, prepared = fake_steps
    ex = Recording()
    run = run_pipeline(_cfg(tmp_path), ex, steps=ENSEMBLE_STEPS, progress=False)
    assert seen == [] and run.summary is None and run.ensemble == {"val_map5": 0.5}  # nothing to finalize with
    assert ex.calls[3] == ("ensemble", str(tmp_path), None)
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "summary.json").write_text("{}")
    run = run_pipeline(_cfg(tmp_path), Recording(), steps=ENSEMBLE_STEPS, progress=False)
    assert seen[0] == "load prepared"
    assert seen[1][0] == "finalize" and seen[1][3] == ["ensemble_s"]  # no prepare_s, no total_s: as before
    assert run.summary == {"finalized": True}


def test_steps_are_the_documented_order():
    assert STEPS == ("prepare", "train", "final_fit", "ensemble", "pseudo_rounds", "finalize")


class RecordingLocal(LocalExecutor):
    """The real local executor, noting which operations ran."""

    def __init__(self):
        self.calls = []

    def train(self, cfg, prepared, timings, **kw):
        self.calls.append("train")
        return super().train(cfg, prepared, timings, **kw)

    def final_fit(self, cfg, prepared, timings, **kw):
        self.calls.append("final_fit")
        return super().final_fit(cfg, prepared, timings, **kw)

    def ensemble(self, cfg, **kw):
        self.calls.append("ensemble")
        return super().ensemble(cfg, **kw)


def test_a_real_local_run_and_its_rerun_retrain_nothing(tiny_data, tmp_path):
    model = ("models=[{name: m, family: metric, backbone: wf_compactnet, embedding_dim: 16, p_individuals: 6, "
             "k_images: 4, stages: [{size: 32, epochs: 1, lr: 0.002}]}]")
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={tmp_path}", model,
                                            "ensemble.trials=4", "ensemble.outer_folds=0",
                                            "ensemble.classifier.enabled=false", "output.quiet=true",
                                            "train.final_fit=true"])
    ex = RecordingLocal()
    first = run_pipeline(cfg, ex, progress=False)
    assert ex.calls == ["train", "final_fit", "ensemble"]
    assert set(first.summary["timings"]) == {"prepare_s", "train_m_s", "final_m_s", "ensemble_s", "total_s"}
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["timings"].keys() == first.summary["timings"].keys()
    files = [tmp_path / "trials" / "m" / "result.json", tmp_path / "final" / "m" / "result.json"]
    stamps = [f.stat().st_mtime_ns for f in files]
    submission = (tmp_path / "submission.csv").read_bytes()
    again = run_pipeline(cfg, RecordingLocal(), progress=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps, "finished steps are not redone"
    assert (tmp_path / "submission.csv").read_bytes() == submission
    assert again.summary["test_map5"] == pytest.approx(first.summary["test_map5"])
    # the blend identify loads is the one the ensemble saved, through the same class
    test_side = FittedBlend.load(tmp_path, side="test", fix="-")
    assert test_side.names == ["m"] and test_side.final_fit == ("m",)


# ------------------------------------------------------------------ the fitted blend's file

def _sides():
    norms = {"a": ScoreNormalizer(logit=True, mean=0.1, std=2.0), "b": ScoreNormalizer(mean=-1.0, std=0.5, top_k=3)}
    test_norms = {"a": ScoreNormalizer(logit=True, mean=0.3, std=1.5), "b": norms["b"]}
    val = FittedBlend(["a", "b"], {"a": 0.25, "b": 0.75}, norms, 1.2, 0.3, ("a",))
    test = FittedBlend(["a", "b"], {"a": 0.25, "b": 0.75}, test_norms, 0.9, 0.3, ("a",))
    return val, test


def test_record_round_trip_keeps_both_sides():
    val, test = _sides()
    record = json.loads(json.dumps(val.to_record(test, tuning={"val_map5": 0.7, "seed": 3})))
    assert FittedBlend.from_record(record, side="val") == val
    assert FittedBlend.from_record(record, side="test") == test
    assert record["val_map5"] == 0.7 and record["threshold"] == 1.2 and record["test_threshold"] == 0.9
    assert list(record)[:6] == ["models", "weights", "threshold", "test_threshold", "new_prior", "threshold_scale"]
    assert list(record)[-3:] == ["normalizers", "test_normalizers", "final_fit"]
    assert FittedBlend.from_record(val.to_record(), side="test") == val  # no test side given: the same blend
    with pytest.raises(ValueError, match="models and weights"):
        val.to_record(FittedBlend(["a"], {"a": 1.0}, {"a": ScoreNormalizer()}, 0.0))


def test_save_and_load(tmp_path):
    val, test = _sides()
    path = val.save(tmp_path, test, tuning={"folds": 3})
    assert path == tmp_path / WEIGHTS_FILE and json.loads(path.read_text())["folds"] == 3
    assert FittedBlend.load(tmp_path, side="val", fix="x") == val
    assert FittedBlend.load(tmp_path, fix="x") == test


@pytest.mark.parametrize("content, words", [(None, "no fitted blend"), ("{not json", "not valid JSON"),
                                            ('{"models": ["a"]}', "incomplete")])
def test_load_errors_name_the_file_and_the_fix(tmp_path, content, words):
    if content is not None:
        (tmp_path / "ensemble").mkdir()
        (tmp_path / WEIGHTS_FILE).write_text(content)
    with pytest.raises(DataError, match=words) as err:
        FittedBlend.load(tmp_path, fix="blend the run first.")
    assert err.value.file == str(tmp_path / WEIGHTS_FILE)
    assert err.value.fix == "blend the run first." and "Fix: blend the run first." in str(err.value)


def test_calibration_reads_the_validation_side(tmp_path):
    """identify's calibration rebuilds the validation blend through FittedBlend.load (its val side)."""
    from whaleflow.identify.run_calibration import validation_blend
    from whaleflow.inference import ClassScores

    val, test = _sides()
    val.save(tmp_path, test)
    rng = np.random.default_rng(0)
    images = np.array([f"q{i}" for i in range(6)])
    classes = np.array(["w1", "w2", "w3"])
    truth = np.array(["w1", "w2", "w3", "w1", "new_whale", "w2"])
    for n in ("a", "b"):
        (tmp_path / "trials" / n).mkdir(parents=True)
        ClassScores(rng.random((6, 3)).astype(np.float32), images, classes, truth).save(
            tmp_path / "trials" / n / "scores_val.npz")
    blended, truth_idx, threshold = validation_blend(tmp_path)
    assert threshold == 1.2  # the validation side's, not the test side's 0.9
    from whaleflow.inference.topk_scores import load_class_scores

    scores = [load_class_scores(tmp_path / "trials" / n / "scores_val.npz") for n in ("a", "b")]
    by_hand = 0.25 * val.normalizers["a"].transform(scores[0].scores) + 0.75 * val.normalizers["b"].transform(
        scores[1].scores)
    np.testing.assert_allclose(blended, by_hand, rtol=1e-5, atol=1e-6)
    assert truth_idx.tolist()[:3] == [0, 1, 2] and truth_idx[4] == -1


# ------------------------------------------------------------------ family facts, not family names

def test_the_identify_note_follows_closed_set_head():
    from whaleflow.families.arcface import ArcFaceTask
    from whaleflow.families.base import FamilyTask
    from whaleflow.identify.page import fallback_note

    assert FamilyTask.CLOSED_SET_HEAD is False and ArcFaceTask.CLOSED_SET_HEAD is True

    class Open:
        CLOSED_SET_HEAD = False

    class Closed:
        CLOSED_SET_HEAD = True

    def run(*tasks, family="newfam"):
        return types.SimpleNamespace(classifier=None, families=[types.SimpleNamespace(family=family, task=t)
                                                                for t in tasks])

    assert fallback_note(run(Open())) == ""
    assert fallback_note(run(Open(), family="arcface")) == "", "the attribute decides, not the name"
    note = fallback_note(run(Closed()))
    assert "newfam head likewise knows only its training individuals" in note


def test_model_scores_read_probability_like_from_the_trial(tmp_path):
    """Scores in [0, 1] are read as probabilities (logit) unless the trial's result says they never are."""
    from whaleflow.ensemble.model_scores import load_model_scores
    from whaleflow.ensemble.trials import TrialArtifacts
    from whaleflow.inference import ClassScores

    rng = np.random.default_rng(1)
    images, classes = np.array([f"q{i}" for i in range(8)]), np.array(["w1", "w2", "w3"])
    truth = np.array(["w1", "w2", "w3", "w1", "w2", "w3", "w1", "new_whale"])
    trials = []
    for name, result in (("p", {"family": "metric"}), ("v", {"family": "newfam", "probability_like": False})):
        d = tmp_path / "trials" / name
        d.mkdir(parents=True)
        ClassScores(rng.random((8, 3)).astype(np.float32), images, classes, truth).save(d / "scores_val.npz")
        ClassScores(rng.random((4, 3)).astype(np.float32), images[:4], classes).save(d / "scores_test.npz")
        trials.append(TrialArtifacts(name, d, result))
    assert [t.probability_like for t in trials] == [True, False]
    s = load_model_scores(_cfg(tmp_path), tmp_path, trials, [])
    assert s.norms["p"].logit is True and s.norms["v"].logit is False
