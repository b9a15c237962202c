"""The node installs one top-level name: the control plane is ``fastpath.control`` (its code in
the repository's ``control/`` folder, mapped by setuptools' ``package_dir``).  Imported as a
bare ``control`` it would be a second copy of every module (two registries, two caches) that
only works from the repository root; these tests fail when any file does that, or when the
installed package offers the bare name."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bare_control_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names
                  if name == "control" or name.startswith("control.")]
    return found


def test_no_file_imports_the_control_plane_by_its_folder_name():
    found = []
    for top in ("fastpath", "control", "tests", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            found += bare_control_imports(path)
    assert found == []


def test_the_installed_package_has_fastpath_control_and_no_bare_control(tmp_path):
    code = ("import importlib.util, fastpath.control.app; "
            "print(importlib.util.find_spec('control') is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
