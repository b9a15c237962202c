"""Build of fastpath's Cython extensions.

Every ``.pyx`` under ``fastpath/`` becomes an extension module of the same dotted name, so a
new hot path needs no edit here.  Metadata lives in ``pyproject.toml``.
"""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import setup
from setuptools.extension import Extension

ROOT = Path(__file__).parent


def extensions():
    exts = []
    for pyx in sorted((ROOT / "fastpath").rglob("*.pyx")):
        rel = pyx.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        exts.append(
            Extension(
                name,
                [str(rel)],
                include_dirs=[str(pyx.parent)],
                extra_compile_args=["-O3", "-fno-strict-aliasing"],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        annotate=bool(os.environ.get("FASTPATH_ANNOTATE")),
        nthreads=int(os.environ.get("FASTPATH_BUILD_JOBS", "0") or 0),
    ),
)
