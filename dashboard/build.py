#!/usr/bin/env python3
"""Rebuild the dashboard into control/dashboard_assets/site/: ``npm ci && npm run build`` here.

Commit the result with the source change: tests/dashboard/test_build.py fails while the
committed build is not the build of the committed source.
"""
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("npm (Node.js 18 or later) is needed to build the dashboard", file=sys.stderr)
        return 2
    for args in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        done = subprocess.run([npm, *args], cwd=HERE)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
