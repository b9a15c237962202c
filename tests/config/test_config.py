"""Config parsing: defaults, the reference's shape, one-line errors naming the key."""
import pytest

from fastpath.config import ConfigError, load_config, parse_config
from fastpath.config.fields import parse_bandwidth, parse_duration, parse_listen


def test_defaults_need_no_file(tmp_path):
    cfg = load_config(None, data_dir=tmp_path)
    assert (cfg.control.host, cfg.control.port, cfg.workers) == ("127.0.0.1", 9480, 1)
    assert cfg.control.on_loopback
    assert cfg.counter_segment_path.startswith("/dev/shm/fastpath-")


@pytest.mark.parametrize("raw, message", [
    ({"node": {"workers": 0}}, "node.workers: must be at least 1; got 0"),
    ({"nodee": {}}, "nodee: unknown key"),
    ({"control": {"listen": "nowhere"}}, "control.listen: expected host:port, got 'nowhere'"),
    ({"control": {"listen": "127.0.0.1:9480", "tokn": "x"}}, "control.tokn: unknown key"),
    ({"trafficStats": {"listen": ":9999", "secret": ["x"]}}, "trafficStats.secret: expected a string, got list"),
    ({"counters": {"slotsPerShard": "many"}}, "counters.slotsPerShard: expected an integer, got 'many'"),
    ([1, 2], "config: expected a mapping, got list"),
])
def test_broken_config_is_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("node:\n  workers: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_value_parsers():
    assert parse_bandwidth("100 mbps") == 12_500_000
    assert parse_bandwidth("1g") == 125_000_000
    with pytest.raises(ValueError):
        parse_bandwidth("100")
    with pytest.raises(ValueError):
        parse_bandwidth(100)
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration("10 parsecs")
    assert parse_listen(":443") == ("0.0.0.0", 443)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
