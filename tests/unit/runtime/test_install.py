"""msjob_runtime.install copies the package so that PYTHONPATH=DIR imports it, on the standard
library alone; and every module of the package is standard library only, in Python 3.8 syntax."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import msjob_runtime
from msjob_runtime import install

SOURCE = Path(msjob_runtime.__file__).parent
MODULES = sorted(p.stem for p in SOURCE.glob("*.py") if p.stem != "__init__")


def test_install_copies_the_package_readable_by_all(tmp_path):
    target = install.install(str(tmp_path / "rt"))
    assert target == tmp_path / "rt" / "msjob_runtime"
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in SOURCE.glob("*.py"))
    for p in target.iterdir():
        assert p.read_bytes() == (SOURCE / p.name).read_bytes()
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.stat().st_mode) == 0o755

    (target / "stale.py").write_text("raise SystemExit('an older copy')\n")
    assert install.install(str(tmp_path / "rt")) == target  # again: replaced whole, nothing left over
    assert not (target / "stale.py").exists()
    assert sorted(os.listdir(tmp_path / "rt")) == ["msjob_runtime"]  # no temporary directories either


def test_the_copy_imports_without_site_packages(tmp_path):
    """``-S``: no site-packages (so neither msjob_operator nor anything installed), only the copy."""
    script = [sys.executable, str(SOURCE / "install.py"), str(tmp_path / "rt")]  # as a plain script too
    done = subprocess.run(script, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"installed in {tmp_path / 'rt' / 'msjob_runtime'}" in done.stderr
    code = ("import importlib, sys\n"
            f"for m in {MODULES!r}: importlib.import_module('msjob_runtime.' + m)\n"
            "import msjob_runtime; print(msjob_runtime.__file__)\n"
            "try:\n    import msjob_operator\nexcept ImportError:\n    print('no msjob_operator')\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path / "rt")}
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(tmp_path / "rt" / "msjob_runtime" / "__init__.py"), "no msjob_operator"]


def test_install_reports_an_unwritable_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert install.main([str(blocker / "rt")]) == 1
    assert "cannot install msjob_runtime" in capsys.readouterr().err


def _imports(tree: ast.AST):
    """(top-level module name, whether the import is guarded: in a function or a try block)."""
    def walk(node, guarded):
        for child in ast.iter_child_nodes(node):
            inner = guarded or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Try))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name.split(".")[0], guarded
            elif isinstance(child, ast.ImportFrom) and not child.level:
                yield (child.module or "").split(".")[0], guarded
            yield from walk(child, inner)
    yield from walk(tree, False)


@pytest.mark.parametrize("module", ["__init__", *MODULES])
def test_modules_are_standard_library_only_and_python_3_8(module):
    source = (SOURCE / f"{module}.py").read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # no syntax newer than the oldest image's Python
    for name, guarded in _imports(tree):
        if name == "mindspore":  # the callback's base class, when MindSpore is there
            assert guarded, f"{module}: mindspore must be imported lazily"
            continue
        assert name in sys.stdlib_module_names or name == "__future__", f"{module} imports {name}"
    assert len(source.splitlines()) <= 400, f"{module} is too long"
