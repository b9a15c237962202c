"""Every compiled module has a ``.pyi`` stub beside its ``.pyx``, and the stub names exactly the
module's public names (so an editor or type checker sees what the extension really exports,
and a name added to or removed from a ``.pyx`` without its stub fails here)."""
from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYX = sorted((ROOT / "fastpath").rglob("*.pyx"))


def public_names(module) -> set[str]:
    """Names a user of the module reaches: not private, not a module, and not a class or
    function another module defines (what the ``.pyx`` merely imported)."""
    out = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            continue
        owner = getattr(value, "__module__", None)
        if (inspect.isclass(value) or callable(value)) and owner not in (None, module.__name__):
            continue
        out.add(name)
    return out


def stub_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_there_are_compiled_modules():
    assert len(PYX) >= 10


@pytest.mark.parametrize("pyx", PYX, ids=lambda p: str(p.relative_to(ROOT)))
def test_stub_names_the_public_names(pyx):
    stub = pyx.with_suffix(".pyi")
    assert stub.exists(), f"{stub.relative_to(ROOT)} is missing"
    module = importlib.import_module(".".join(pyx.relative_to(ROOT).with_suffix("").parts))
    have, want = stub_names(stub), public_names(module)
    assert not want - have, f"{stub.name} does not name {sorted(want - have)}"
    assert not have - want, f"{stub.name} names what the module lacks: {sorted(have - want)}"
