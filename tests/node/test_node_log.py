"""The node log: one file, lines from every process, rotated by size."""
import logging
import time

from fastpath.node_log import log_to_node_file, node_log_path, rotate_if_large
from tests.support.node import NodeProcess


def test_every_process_writes_the_node_log(tmp_path):
    with NodeProcess(tmp_path, workers=2) as node:
        path = node_log_path(node.data_dir)
        deadline = time.monotonic() + 10
        labels = ("supervisor", "worker[0]", "worker[1]")
        while time.monotonic() < deadline:
            text = path.read_text() if path.exists() else ""
            if all(f" {label} " in text for label in labels):
                break
            time.sleep(0.2)
        missing = [label for label in labels if f" {label} " not in text]
        assert not missing, f"no lines from {missing} in:\n{text}"


def test_rotation_keeps_a_bounded_history_and_writers_follow(tmp_path):
    handler = log_to_node_file(tmp_path, "test")
    logger = logging.getLogger("fastpath.test.rotation")
    logger.setLevel(logging.INFO)
    logger.propagate = True
    try:
        assert not rotate_if_large(tmp_path, max_bytes=10_000)     # nothing to rotate yet
        for round_ in range(5):
            for i in range(50):
                logger.info("round %d line %d %s", round_, i, "x" * 100)
            assert rotate_if_large(tmp_path, max_bytes=1000, keep=3)
        logger.info("after the last rotation")
        handler.flush()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["node.log", "node.log.1", "node.log.2", "node.log.3"]
        assert "after the last rotation" in (tmp_path / "node.log").read_text()
        assert "round 4 line 49" in (tmp_path / "node.log.1").read_text()
        assert "round 2 line 0" in (tmp_path / "node.log.3").read_text()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
