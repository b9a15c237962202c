"""The config examples in the README are accepted as written."""
import re
from pathlib import Path

import pytest
import yaml

from fastpath.config import load_config
from fastpath.hy2.config import parse_client_config

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split(":", 1)[0])
def test_readme_example_parses(block, tmp_path):
    data = yaml.safe_load(block)
    if "server" in data:                      # a client config
        parse_client_config(data)
        return
    path = tmp_path / "node.yaml"
    path.write_text(block)
    load_config(str(path), data_dir=str(tmp_path))
