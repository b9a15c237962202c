"""Build of fastpath's Cython extensions.

Every ``.pyx`` under ``fastpath/`` becomes an extension module of the same dotted name, so a
new hot path needs no edit here.  Metadata lives in ``pyproject.toml``.
"""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import find_packages, setup
from setuptools.extension import Extension

ROOT = Path(__file__).parent


def header_dirs():
    """Every folder of fastpath/ that holds a C header, so one module's .pxd (and the header it
    names) can be cimported from another folder."""
    return sorted({str(h.parent.relative_to(ROOT)) for h in (ROOT / "fastpath").rglob("*.h")})


def extensions():
    exts = []
    includes = header_dirs()
    for pyx in sorted((ROOT / "fastpath").rglob("*.pyx")):
        rel = pyx.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        exts.append(
            Extension(
                name,
                [str(rel)],
                include_dirs=[str(rel.parent), *includes],
                extra_compile_args=["-O3", "-fno-strict-aliasing"],
            )
        )
    return exts


def packages():
    """fastpath and its subpackages, and the control plane as ``fastpath.control``: its code
    stays in the repository's ``control/`` folder (package_dir below) so the layout shows the
    split between data plane and control plane, while the node installs one top-level name."""
    found = find_packages(include=["fastpath", "fastpath.*"])
    found += ["fastpath.control"] + ["fastpath.control." + p for p in find_packages("control")]
    return found


setup(
    packages=packages(),
    package_dir={"fastpath.control": "control"},
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
