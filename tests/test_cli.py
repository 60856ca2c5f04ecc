"""The command line as a user meets it: real commands, one-line errors, no tracebacks."""
import subprocess
import sys

import pandas as pd

from ray_jobs.cli import main


def test_synth_then_score_a_perfect_submission(tmp_path, capsys):
    out = tmp_path / "flukes"
    assert main(["synth", str(out), "--individuals", "5", "--seed", "2", "--width", "64", "--height", "48"]) == 0
    answers = pd.read_csv(out / "answers.csv")
    answers.assign(Id=answers["Id"] + " w_x w_y w_z new_whale").to_csv(tmp_path / "sub.csv", index=False)
    capsys.readouterr()
    assert main(["score", str(tmp_path / "sub.csv"), str(out / "answers.csv")]) == 0
    assert "MAP@5 1.00000" in capsys.readouterr().out


def test_score_missing_images_is_one_line_error(tmp_path, capsys):
    pd.DataFrame({"Image": ["a.jpg"], "Id": ["w_1"]}).to_csv(tmp_path / "sub.csv", index=False)
    pd.DataFrame({"Image": ["a.jpg", "b.jpg"], "Id": ["w_1", "w_2"]}).to_csv(tmp_path / "ans.csv", index=False)
    assert main(["score", str(tmp_path / "sub.csv"), str(tmp_path / "ans.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "misses 1 of 2 images" in err[0] and "sub.csv" in err[0]


def test_bad_override_is_one_line_error(tmp_path, capsys):
    assert main(["prepare", "--config", "configs/demo.yaml", "--set", "prepare.val_fracton=0.2"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'val_fraction'" in err and "Traceback" not in err


def test_prepare_on_missing_data_root_names_the_fix(tmp_path, capsys):
    code = main(["prepare", "--config", "configs/demo.yaml", "--set", f"data.root={tmp_path / 'nope'}",
                 f"output.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err and "Traceback" not in err


def test_prepare_prints_a_summary(tiny_data, tmp_path, capsys):
    code = main(["prepare", "--config", "configs/demo.yaml", "--set", f"data.root={tiny_data}",
                 f"output.dir={tmp_path / 'run'}", "data.boxes=null"])
    out = capsys.readouterr().out
    assert code == 0
    assert "split" in out and "leaks" in out
    assert (tmp_path / "run" / "prepared" / "summary.json").exists()


def test_console_script_is_installed():
    res = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for cmd in ("synth", "prepare", "run", "tune", "ensemble", "score", "report", "demo"):
        assert cmd in res.stdout
