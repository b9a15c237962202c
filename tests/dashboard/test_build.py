"""The committed dashboard build is the build of the committed source (no Node.js needed).

``dashboard/stamp.mjs`` records, at build time, a SHA-256 over the source files; here the same
digest is recomputed in Python over the same files.  A source edit committed without running
``python dashboard/build.py`` fails here, as does a hand edit of the built files."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "dashboard"
SITE = ROOT / "control" / "dashboard_assets" / "site"
SOURCES = ["index.html", "package.json", "package-lock.json", "vite.config.js", "stamp.mjs", "src"]


def digest(root: Path, paths: list[str]) -> tuple[str, list[str]]:
    """stamp.mjs's digest: sorted relative paths, each hashed as ``path\\0bytes\\0``."""
    files = []
    for p in paths:
        full = root / p
        files += [f for f in full.rglob("*") if f.is_file()] if full.is_dir() else [full]
    names = sorted(f.relative_to(root).as_posix() for f in files)
    names = [n for n in names if n != "build.json"]
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest(), names


def build() -> dict:
    return json.loads((SITE / "build.json").read_text())


def test_committed_build_matches_its_source():
    source_hash, names = digest(SOURCE, SOURCES)
    assert names == build()["sources"], "the source files changed: run python dashboard/build.py"
    assert source_hash == build()["source_hash"], "the source changed since the build: run python dashboard/build.py"


def test_build_id_names_the_emitted_files():
    build_id, names = digest(SITE, ["."])
    assert names == build()["files"]
    assert build_id == build()["build_id"], "the built files were edited by hand: rebuild"


def test_the_page_loads_only_files_of_the_build():
    """Offline: every script and style the page names is in the build, none from elsewhere."""
    index = (SITE / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', index)
    assert refs, index
    for ref in refs:
        if ref.startswith("data:"):
            continue
        assert not re.match(r"^(https?:)?//", ref), f"{ref} is not a file of the build"
        assert (SITE / ref).is_file(), f"{ref} is missing from the build"
    for js in (SITE / "assets").glob("*.js"):
        assert not re.search(r"""(?:import|from)\s*\(?\s*["']https?://""", js.read_text()), js.name


def test_the_wheel_ships_the_build():
    """pyproject's package data names the build's files (``pip install .`` carries them)."""
    import tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data["fastpath.control.dashboard_assets"]
    base = SITE.parent
    covered = {p.relative_to(base).as_posix() for g in globs for p in base.glob(g) if p.is_file()}
    built = {("site/" + n) for n in build()["files"]} | {"site/build.json"}
    assert built <= covered, built - covered
