"""What an operator deploys beside the package: the systemd unit, the Dockerfile, the LICENSE.

The unit is checked by systemd's own tools (``systemd-analyze verify`` parses every directive
and refuses unknown ones; ``security --offline`` rates the hardening).  The image needs a
Docker daemon to build; where none is reachable the build test is skipped and says so, and the
parts that hold without one are checked: what it copies exists and the command it runs is one
``fastpath`` accepts."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "fastpath.service"
DOCKERFILE = ROOT / "Dockerfile"


def _unit_for_verify(tmp_path) -> Path:
    """The unit with ExecStart's program replaced by one that exists here (verify checks it)."""
    text = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    out = tmp_path / "fastpath.service"
    out.write_text(text.replace(exec_start, "/bin/true"))
    return out


def _directives(text: str) -> dict[str, str]:
    return {k: v for k, v in re.findall(r"^([A-Za-z]+)=(.*)$", text, re.M)}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_unit_verifies_and_is_hardened(tmp_path):
    unit = _unit_for_verify(tmp_path)
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", sec.stdout).group(1))
    assert level < 3.0, sec.stdout[-2000:]
    # verify fails on what it cannot parse: the check can fail.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True,
                         timeout=60)
    assert "restart specifier" in bad.stderr, bad.stderr


def test_the_unit_restarts_on_failure_and_runs_a_command_fastpath_accepts():
    d = _directives(UNIT.read_text())
    assert d["Restart"] == "on-failure" and d["KillMode"] == "mixed"
    assert d["NoNewPrivileges"] == "yes" and d["ProtectSystem"] == "strict"
    assert "RemoveIPC" not in d and "DynamicUser" not in d      # the counter segment survives
    from fastpath.cli import build_parser
    argv = shlex.split(d["ExecStart"])
    assert argv[0].endswith("/fastpath")
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/fastpath/node.yaml" and args.data_dir == "/var/lib/fastpath"


def test_the_dockerfile_builds_from_the_wheel_and_runs_serve():
    text = DOCKERFILE.read_text()
    assert "wheels/build.py" in text and "--no-index --find-links" in text
    for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        if src != ".":
            assert (ROOT / src).exists(), src
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    import json
    from fastpath.cli import build_parser
    args = build_parser().parse_args(json.loads(cmd))
    assert args.config == "/etc/fastpath/node.yaml"


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _docker_daemon(), reason="no Docker daemon reachable on this machine")
def test_the_image_builds_and_prints_the_version():
    tag = "fastpath-test:latest"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=3600)
    out = subprocess.run(["docker", "run", "--rm", tag, "version"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip(), out


def test_the_license_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'license\s*=\s*\{\s*text\s*=\s*"([^"]+)"', pyproject).group(1)
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
