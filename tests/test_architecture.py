"""The layers' imports point one way and form no cycle (import-linter, configured in pyproject).

The contracts live in pyproject.toml ([tool.importlinter]); README's "Architecture" section says
what each layer may import. The second test proves the checker is live: an upward import planted
in a copy of the package breaks the contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_imports_follow_the_layers_and_form_no_cycle():
    result = _lint(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, planted, broken", [
    # images is the lowest layer but one: importing the run layer points up.
    ("facelib/images.py", "import facelib.run.folder\n", "layers"),
    # data.cache imports data.celeba; the reverse closes a cycle (and stays in one layer).
    ("facelib/data/celeba.py", "import facelib.data.cache\n", "no import cycles"),
])
@pytest.mark.slow
def test_an_upward_import_or_a_cycle_breaks_the_contract(tmp_path, module, planted, broken):
    shutil.copytree(ROOT / "facelib", tmp_path / "facelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + "\n" + planted)
    result = _lint(tmp_path, tmp_path)
    assert result.returncode != 0
    broken_section = result.stdout.split("Broken contracts", 1)[1]
    assert f"\n{broken}" in broken_section, broken_section[:500]


def test_every_package_is_installed():
    """A non-editable install ships exactly the packages pyproject lists: a new subpackage
    missing there would import in a clone and fail after `pip install`."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "facelib").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
