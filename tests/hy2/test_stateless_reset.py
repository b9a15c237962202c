"""Stateless resets: tokens derived from the node key, resets shaped as RFC 9000 §10.3 asks."""
from __future__ import annotations

import json
import os

from aioquic.quic.configuration import QuicConfiguration

from fastpath.hy2.quic.quic_connection import Hy2QuicConnection
from fastpath.hy2.quic.stateless_reset import (MIN_RESET_SIZE, TOKEN_SIZE, StatelessResetter,
                                          reset_token)
from fastpath.supervisor.bootstrap import load_or_create_secrets, stateless_reset_key

KEY = bytes(range(32))


def test_the_reset_ends_with_the_token_of_the_connection_id_and_is_smaller_than_the_packet():
    resetter = StatelessResetter(KEY)
    cid = os.urandom(8)
    for size in (22, 30, 43, 44, 1200):
        reset = resetter.reset_for(b"\x41" + os.urandom(size - 1), cid)
        assert MIN_RESET_SIZE <= len(reset) < size
        assert len(reset) <= 43
        assert reset[-TOKEN_SIZE:] == reset_token(KEY, cid)
        assert reset[0] & 0xC0 == 0x40          # short header, fixed bit set


def test_packets_too_small_to_answer_safely_get_no_reset():
    resetter = StatelessResetter(KEY)
    assert resetter.reset_for(os.urandom(21), b"12345678") is None
    assert resetter.reset_for(os.urandom(100), b"") is None


def test_resets_are_rate_limited():
    resetter = StatelessResetter(KEY, per_second=5)
    sent = [resetter.reset_for(os.urandom(100), b"abcdefgh") for _ in range(20)]
    assert sum(r is not None for r in sent) == 5


def test_a_server_connection_announces_the_derived_tokens(tls_files):
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"], connection_id_length=8)
    cfg.load_cert_chain(*tls_files)
    quic = Hy2QuicConnection(configuration=cfg, original_destination_connection_id=os.urandom(8),
                             reset_key=KEY)
    quic._replenish_connection_ids()
    assert len(quic._host_cids) > 1
    for record in quic._host_cids:
        assert record.stateless_reset_token == reset_token(KEY, record.cid)


def test_an_older_secrets_file_gains_the_reset_key_once(tmp_path):
    (tmp_path / "secrets.json").write_text(json.dumps({"control_token": "t", "default_user_secret": "s"}))
    values, created = load_or_create_secrets(tmp_path)
    assert not created and values["control_token"] == "t"
    key = stateless_reset_key(tmp_path)
    assert key is not None and len(key) == 32
    load_or_create_secrets(tmp_path)
    assert stateless_reset_key(tmp_path) == key          # kept across starts
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
