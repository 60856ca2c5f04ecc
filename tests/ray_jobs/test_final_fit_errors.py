"""On Ray: when every final fit fails, the run stops with one clear line, not a NameError."""
from __future__ import annotations

import json

import pytest

from whaleflow.errors import WhaleflowError


def test_no_final_fit_finished_is_one_clear_error(local_ray, tiny_config, tmp_path, capsys):
    from ray_jobs.final_fit import run_final_experiment

    cfg = tiny_config(tmp_path, "train.final_fit=true", "ray.max_failures=0", "output.quiet=false")
    # A finished validated trial, but the run's prepared/ folder is gone: the final fit's real
    # Tune trial fails when it opens it (no faked Tuner results), so no final fit finishes.
    trial = tmp_path / "trials" / "metric_compact"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"model": "metric_compact", "params": {}}))
    (trial / "result.json").write_text(json.dumps({"name": "metric_compact", "best_epoch": 0, "epochs": 1}))
    assert not (tmp_path / "prepared").exists()
    with pytest.raises(WhaleflowError) as err:
        run_final_experiment(cfg, 0.0, progress=True)
    message = str(err.value)
    assert message.startswith("no final fit finished ({'metric_compact': 'error'})"), message
    assert f"see {(tmp_path / 'tune' / 'whaleflow-final').resolve()}." in message and "\n" not in message
    assert (tmp_path / "tune" / "whaleflow-final").is_dir()
    assert "1 final fit(s) failed" in capsys.readouterr().out
    assert not (tmp_path / "final" / "metric_compact" / "result.json").exists()
