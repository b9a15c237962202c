#!/usr/bin/env python3
"""Vendor the API documentation UIs into control/docs_assets/: Swagger UI (``/docs``) and
ReDoc (``/redoc``), so a node serves both with no CDN (it must work offline).

The files come unchanged from the projects' own npm packages, at the versions pinned in
``PINS``: ``npm pack NAME@VERSION`` fetches the package tarball (checked against the pinned
integrity), and the named files are copied out.  ``control/docs_assets/vendor.json`` records
package, version, integrity and each file's SHA-256; tests/control/test_docs_ui.py checks the
committed files against it, and (where npm can reach its registry) against the tarball itself.

Why these packages: ``swagger-ui-dist`` is the Swagger UI project's own build (5.x renders
OpenAPI 3.1, which the node's document is); PyPI's bundles carry 4.x (``swagger-ui-bundle``) or
wrap the same files with Jinja2 and framework glue (``swagger-ui-py``).  ``redoc`` 2.5 is the
last ReDoc line whose standalone bundle loads nothing from a CDN (3.x fetches its icon set
from one) and the line m3u-proxy's FastAPI serves at ``/redoc``; on PyPI it ships only inside
framework plugins that would pull Flask along.

Run: ``python dashboard/vendor_docs.py`` (needs npm), then commit control/docs_assets/.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "control" / "docs_assets"

# package -> (version, integrity of its tarball, {file in the package: name in docs_assets})
PINS = {
    "swagger-ui-dist": ("5.35.0",
                        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
                        {"swagger-ui-bundle.js": "swagger-ui-bundle.js",
                         "swagger-ui.css": "swagger-ui.css",
                         "LICENSE": "LICENSE.swagger-ui"}),
    "redoc": ("2.5.2",
              "sha512-sTJfItvRkcDTojB6wdLN4M+Ua6mlZwElV21Tf8Mn7IbQF/1Os6GvgQpZyLWPGZZHbhy7GC1Or1hTMHfz1vKh5A==",
              {"bundles/redoc.standalone.js": "redoc.standalone.js",
               "LICENSE": "LICENSE.redoc"}),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(npm: str, name: str, version: str, integrity: str, into: Path) -> dict[str, bytes]:
    """The files of ``name@version`` from its registry tarball: {path in package: bytes}."""
    done = subprocess.run([npm, "pack", f"{name}@{version}", "--json", "--silent"], cwd=into,
                          capture_output=True, text=True, timeout=300, check=True)
    info = json.loads(done.stdout)[0]
    if info["integrity"] != integrity:
        raise SystemExit(f"{name}@{version}: the registry's tarball is {info['integrity']}, "
                         f"not the pinned {integrity}")
    out = {}
    with tarfile.open(into / info["filename"]) as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name.removeprefix("package/")] = tar.extractfile(member).read()
    return out


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("npm is needed to vendor the documentation UIs", file=sys.stderr)
        return 2
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, integrity, files) in PINS.items():
            content = pack(npm, name, version, integrity, Path(tmp))
            entry = {"version": version, "integrity": integrity, "files": {}}
            for src, dst in files.items():
                data = content[src]
                (OUT / dst).write_bytes(data)
                entry["files"][dst] = {"from": src, "sha256": sha256(data)}
            manifest[name] = entry
    (OUT / "vendor.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print("vendored", ", ".join(f"{n}@{e['version']}" for n, e in manifest.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
