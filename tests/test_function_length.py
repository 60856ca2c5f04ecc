"""No function in ``whaleflow/`` or ``ray_jobs/`` is longer than 80 lines (issue 26).

A long function hides its steps: each step named as its own function says what it does and
can be read, tested and changed alone. The check walks the source with :mod:`ast` (a
function's length runs from its ``def`` line to its last line, decorators left out, nested
functions counted inside their parent as well as alone). Run this file as a script to list
the longest functions: ``python tests/test_function_length.py [LIMIT]``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("whaleflow", "ray_jobs")
MAX_LINES = 80


def function_lengths(source: str, filename: str = "<source>") -> list[tuple[str, int, int]]:
    """(qualified name, first line, length in lines) of every function and method in ``source``."""
    out: list[tuple[str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(source, filename=filename), "")
    return out


def long_functions(limit: int = MAX_LINES, root: Path = ROOT) -> list[tuple[str, str, int, int]]:
    """(file, function, first line, length) of every function over ``limit`` lines, longest first."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = str(path.relative_to(root))
            for name, line, length in function_lengths(path.read_text(encoding="utf-8"), rel):
                if length > limit:
                    found.append((rel, name, line, length))
    return sorted(found, key=lambda r: -r[3])


def test_lengths_are_measured_from_def_to_last_line():
    src = "@dec\ndef f(x):\n    y = x\n\n    return y\n\nclass C:\n    def m(self):\n        def inner():\n            pass\n"
    assert function_lengths(src) == [("f", 2, 4), ("C.m", 8, 3), ("C.m.inner", 9, 2)]


def test_a_long_function_is_found(tmp_path):
    (tmp_path / "whaleflow").mkdir()
    (tmp_path / "ray_jobs").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))  # def line + 80 = 81 lines
    (tmp_path / "whaleflow" / "long.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert long_functions(root=tmp_path) == [("whaleflow/long.py", "long", 5, MAX_LINES + 1)]


def test_no_function_over_80_lines():
    found = long_functions()
    assert not found, "functions over 80 lines (split them into named steps):\n" + "\n".join(
        f"  {file}:{line} {name}: {length} lines" for file, name, line, length in found)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else MAX_LINES
    for file, name, line, length in long_functions(limit):
        print(f"{length:5d}  {file}:{line}  {name}")
