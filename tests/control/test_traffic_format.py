"""Go-compatible renderings of the Traffic Stats API."""
import pytest

from fastpath.control.traffic_format import go_bool, go_duration, rfc3339_nano, rounded_duration, stream_table


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("yes", False), ("tRUE", False), ("", False), (None, False), ("2", False),
])
def test_clear_is_parsed_like_strconv_parsebool(value, expected):
    assert go_bool(value) is expected


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (12_000_000, "12ms"), (516_000_000, "516ms"),
    (3_005_000_000, "3.005s"), (60_000_000_000, "1m0s"), (61_500_000_000, "1m1.5s"),
    (3_723_000_000_000, "1h2m3s"), (7_200_000_000_000, "2h0m0s"),
])
def test_go_duration_string(ns, text):
    assert go_duration(ns) == text


@pytest.mark.parametrize("ns, text", [
    (400_000, "0s"), (515_600_000, "516ms"), (3_004_600_000, "3.005s"),
    (599_999_400_000, "9m59.999s"), (600_400_000_000, "10m0s"), (3_723_400_000_000, "1h2m3s"),
])
def test_table_rounding_ms_below_ten_minutes_seconds_above(ns, text):
    assert rounded_duration(ns) == text


def test_rfc3339_nano_trims_trailing_zeros():
    assert rfc3339_nano(1731049665_956956773) == "2024-11-08T07:07:45.956956773Z"
    assert rfc3339_nano(1731049665_500000000) == "2024-11-08T07:07:45.5Z"
    assert rfc3339_nano(1731049665_000000000) == "2024-11-08T07:07:45Z"


def test_stream_table_layout():
    now = 10_000_000_000_000
    rows = [{"state": "estab", "auth": "user", "connection": 0x7BE5F8F0, "stream": 20, "tx": 1234,
             "rx": 1234, "req_addr": "127.0.0.1:24434", "hooked_req_addr": "",
             "_initial_ns": now - 516_000_000, "_last_ns": now - 515_000_000},
            {"state": "init", "auth": "a-rather-long-user-name", "connection": 1, "stream": 0,
             "tx": 0, "rx": 0, "req_addr": "", "hooked_req_addr": "",
             "_initial_ns": now - 3_723_000_000_000, "_last_ns": now - 61_000_000_000}]
    assert stream_table(rows, now) == (
        "State    Auth           Connection   Stream     TX-Bytes     RX-Bytes     Lifetime  Last-Active Req-Addr         Hooked-Req-Addr\n"
        "ESTAB    user             7BE5F8F0       20         1234         1234        516ms        515ms 127.0.0.1:24434  -\n"
        "INIT     a-rather-long-user-name     00000001        0            0            0       1h2m3s         1m1s -                -\n")
