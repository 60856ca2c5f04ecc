"""Safe checkpoints: everything a family stores round-trips under ``torch.load(weights_only=True)``,
unsafe or damaged files are refused with the file named, and a resume falls back to ``previous.pt``."""
from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from whaleflow.engine.checkpoint import (CheckpointError, candidates, load_checkpoint, load_latest,
                                         remove_partial_writes, save_checkpoint, set_rng_state)


def _state():
    return {
        "model": OrderedDict(w=torch.randn(3, 2), b=torch.zeros(2, dtype=torch.float16)),
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999),
                                                                                  "foreach": None, "params": [0]}]},
        "size": 48, "name": "metric", "lr": 0.5, "flag": True, "blob": b"\x00\x01", "ids": {1, 2},
        "frozen": frozenset({"a"}), "z": 1 + 2j,
        "mined": (np.arange(5, dtype=np.int64), np.array([1, 2], np.int32), np.array([], np.int64)),
        "arrays": [np.eye(2, dtype=np.float32), np.array(["whale_a", "w_b"]), np.arange(4, dtype=np.uint32).reshape(2, 2),
                   np.array([True, False]), np.array(3.5), np.array([1.0, 2.0], ">f8"),
                   np.array([{"k": 1}, None, "s"], dtype=object), np.datetime64("2024-01-02")],
        "scalars": [np.int64(7), np.float32(0.25), np.bool_(True)],
        "nested": [[{"deep": np.ones((1, 2, 3), np.float64)}]],
    }


def _same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert all(x == y for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


def test_a_family_state_round_trips_and_the_file_opens_with_weights_only(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "last.pt", {"task": state})
    raw = torch.load(path, weights_only=True)  # the plain safe loader accepts the file as written
    assert raw["checkpoint_format"] == 2 and isinstance(raw["task"]["mined"][0], dict)
    back = load_checkpoint(path)
    _same(state, back["task"])


def test_something_a_safe_checkpoint_cannot_hold_fails_at_save_naming_the_key(tmp_path):
    with pytest.raises(CheckpointError, match=r"task\.sampler\.where is a pathlib.*PosixPath.*Fix"):
        save_checkpoint(tmp_path / "last.pt", {"task": {"sampler": {"where": Path("/x")}}})
    assert not (tmp_path / "last.pt").exists() and not list(tmp_path.iterdir())


def test_rng_states_are_restored_exactly(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # a cached Gaussian in numpy's state
    save_checkpoint(tmp_path / "c.pt", {})
    expected = (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected


class _Payload:
    """A pickle that runs code when it is opened: it creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "last.pt"
    torch.save({"task": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"last\.pt holds objects that safe loading refuses .*Fix: delete it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_an_old_full_pickle_checkpoint_is_refused_with_a_one_line_message(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"rng": {"numpy": np.random.get_state()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and "older whaleflow" in str(err.value)


def test_keep_previous_rotates_and_a_truncated_last_falls_back_with_a_message(tmp_path, capsys):
    last = tmp_path / "last.pt"
    for epoch in (1, 2):
        save_checkpoint(last, {"state": {"epoch": epoch}}, keep_previous=True)
    assert load_checkpoint(tmp_path / "previous.pt")["state"]["epoch"] == 1
    assert load_checkpoint(last)["state"]["epoch"] == 2
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    ckpt, used = load_latest(candidates(last), name="metric_compact")
    assert used.name == "previous.pt" and ckpt["state"]["epoch"] == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("[metric_compact] ") and "last.pt is damaged" in err
    assert "Resuming from" in err and "previous.pt" in err and "(epoch 1)" in err


def test_every_checkpoint_damaged_is_an_error_naming_the_fix(tmp_path):
    last = tmp_path / "last.pt"
    last.write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "previous.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last\.pt is damaged .*delete .* to train this model from the start"):
        load_latest(candidates(last))
    assert load_latest(candidates(tmp_path / "none" / "last.pt")) is None


def test_partial_writes_are_cleaned_up(tmp_path):
    (tmp_path / ".last.pt.abc123.pt").write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"kept")
    assert remove_partial_writes(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
