"""Build fastpath's wheel and repair it to a manylinux tag.

    python wheels/build.py              # -> wheels/dist/fastpath-<v>-<py>-manylinux_*.whl
    python wheels/build.py --with-deps  # also download the runtime dependencies' wheels there,
                                        # so the node installs offline: pip install --no-index
                                        # --find-links wheels/dist fastpath

auditwheel checks that the compiled modules link only against libraries the manylinux policy
allows and retags the wheel; artifacts stay out of git (wheels/dist is ignored).
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "wheels" / "dist"


def run(*cmd: str, **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def build(with_deps: bool, python: str = sys.executable) -> Path:
    DIST.mkdir(parents=True, exist_ok=True)
    for old in DIST.glob("fastpath-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as raw_dir:
        run(python, "-m", "pip", "wheel", "--no-deps", "-w", raw_dir, str(ROOT))
        (raw,) = glob.glob(os.path.join(raw_dir, "fastpath-*.whl"))
        if shutil.which("auditwheel") or _has_module(python, "auditwheel"):
            run(python, "-m", "auditwheel", "repair", "--only-plat", "-w", str(DIST), raw)
        else:
            print("auditwheel not installed: keeping the linux_* wheel", file=sys.stderr)
            shutil.copy(raw, DIST)
    (wheel,) = DIST.glob("fastpath-*.whl")
    if with_deps:
        run(python, "-m", "pip", "download", "--only-binary=:all:", "-d", str(DIST), str(wheel))
    print(f"built {wheel}")
    return wheel


def _has_module(python: str, name: str) -> bool:
    return subprocess.run([python, "-c", f"import {name}"], capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-deps", action="store_true", help="also download dependency wheels")
    args = parser.parse_args()
    build(args.with_deps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
