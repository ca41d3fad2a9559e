"""The documentation: every Python example in it runs, and the site builds without warnings."""

import os
import re
import shutil
import subprocess
import sys

import matplotlib
import pytest
from conftest import ROOT as _ROOT

ROOT = str(_ROOT)
PAGES = ["README.md"] + sorted(
    os.path.join("docs", name)
    for name in os.listdir(os.path.join(ROOT, "docs"))
    if name.endswith(".md")
)


def python_blocks(path):
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)])
def test_code_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    namespace = {"__name__": "__docs__"}
    for block in python_blocks(page):  # blocks of a page share one namespace, in order
        exec(compile(block, page, "exec"), namespace)


def build(source, out):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-E",
            "-n",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            source,
            out,
        ],
        capture_output=True,
        text=True,
    )


def test_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    result = build(os.path.join(ROOT, "docs"), str(tmp_path / "html"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "html" / "api.html").exists()
    # the check can fail: a reference to an object we do not have breaks the build
    broken = tmp_path / "docs"
    shutil.copytree(os.path.join(ROOT, "docs"), broken, ignore=shutil.ignore_patterns("_build"))
    with open(broken / "api.md", "a") as f:
        f.write("\nSee {py:class}`topo_landscape.NoSuchThing`.\n")
    result = build(str(broken), str(tmp_path / "html2"))
    assert result.returncode != 0 and "NoSuchThing" in result.stderr
