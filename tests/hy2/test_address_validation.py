"""Retry tokens: only a token this node issued, to this address, recently, opens a connection."""
from __future__ import annotations

import os
import time

from hypothesis import given, settings, strategies as st

from fastpath.hy2.quic.address_validation import TOKEN_LIFETIME, RetryTokens

ADDR = ("127.0.0.1", 40000)


def test_a_token_round_trips_for_its_own_address_only():
    tokens = RetryTokens(b"k" * 32)
    odcid, scid = os.urandom(8), os.urandom(8)
    token = tokens.issue(ADDR, odcid, scid)
    assert tokens.check(ADDR, token) == (odcid, scid)
    assert tokens.check(("127.0.0.1", 40001), token) is None
    assert tokens.check(("127.0.0.2", 40000), token) is None
    assert RetryTokens(b"x" * 32).check(ADDR, token) is None        # another node's key


def test_an_old_token_is_refused():
    tokens = RetryTokens()
    token = tokens.issue(ADDR, os.urandom(8), os.urandom(8))
    assert tokens.check(ADDR, token, now=time.time() + TOKEN_LIFETIME + 1) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_hostile_tokens_never_validate_nor_raise(token):
    assert RetryTokens(b"k" * 32).check(ADDR, token) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=20), st.binary(min_size=1, max_size=20),
       st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_spoils_a_token(odcid, scid, position, flip):
    tokens = RetryTokens(b"k" * 32)
    token = bytearray(tokens.issue(ADDR, odcid, scid))
    position %= len(token)
    token[position] ^= flip or 1
    assert tokens.check(ADDR, bytes(token)) is None
