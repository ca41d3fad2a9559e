"""The house keeps its shape: the import contracts of pyproject.toml (floors, no circles), and
no module over 600 lines or function over 80 (docstrings left out)."""

import ast
import pathlib
import subprocess
import sys

import pytest
from conftest import ROOT

PACKAGE = ROOT / "topo_landscape"
LINES, FUNCTION_LINES = 600, 80


def test_the_import_contracts_are_kept():
    """import-linter on pyproject.toml's contracts, in a child process (it imports the package
    afresh, from this checkout)."""
    pytest.importorskip("importlinter.cli", reason="import-linter: pip install -e '.[dev]'")
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def function_lengths(path: pathlib.Path):
    """(name, lines of its body without the docstring) of every function in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]
            yield node.name, node.end_lineno - first.lineno + 1


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)


def test_no_module_over_600_lines_and_no_function_over_80():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    long_modules = [
        (str(p.relative_to(ROOT)), n) for p in files if (n := p.read_text().count("\n")) > LINES
    ]
    long_functions = [
        (str(p.relative_to(ROOT)), name, n)
        for p in files
        for name, n in function_lengths(p)
        if n > FUNCTION_LINES
    ]
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_the_length_check_measures_what_it_claims(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    source = tmp_path / "f.py"
    source.write_text(f'def f():\n    """A docstring\n    of two lines."""\n{body}\n')
    assert list(function_lengths(source)) == [("f", 81)]
