"""inference/ sits below ensemble/: the ensemble and identify build on it, never the reverse."""
from __future__ import annotations

import ast
from pathlib import Path

INFERENCE = Path(__file__).resolve().parents[2] / "whaleflow" / "inference"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, function-level ones included, relative ones
    resolved against ``whaleflow.inference``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = ["whaleflow", "inference"][: max(0, 2 - (node.level - 1))] if node.level else []
            base = ".".join(package + ([node.module] if node.module else []))
            if node.module is None:  # `from .. import ensemble`: the names are the modules
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, base))
    return out


def test_no_inference_module_imports_the_ensemble():
    files = sorted(INFERENCE.glob("*.py"))
    assert len(files) >= 5 and (INFERENCE / "topk.py") in files
    offenders = [f"{p.name}:{line} imports {mod}" for p in files for line, mod in _imported_modules(p)
                 if mod == "whaleflow.ensemble" or mod.startswith("whaleflow.ensemble.")]
    assert offenders == []


def test_the_scan_sees_relative_and_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ..ensemble.tune import best_threshold\n"
                     "def f():\n    from .. import ensemble\n    import whaleflow.ensemble.blend\n"
                     "from .ranked import RankedTopK\n")
    assert [m for _, m in _imported_modules(probe)] == [
        "whaleflow.ensemble.tune", "whaleflow.inference.ranked", "whaleflow.ensemble", "whaleflow.ensemble.blend"]
