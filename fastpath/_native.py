"""Import of compiled hot-path modules, failing loudly when they were not built.

There is deliberately no pure-Python fallback: a node that silently ran its per-byte work in
Python would be slower by orders of magnitude without anyone noticing.
"""
import importlib


class NotBuiltError(ImportError):
    pass


def load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise NotBuiltError(
            f"compiled module {module} is not built: install fastpath with "
            f"`pip install .` (or `pip install -e .`), or run `python setup.py build_ext --inplace`"
        ) from None
