"""Units behind the face: the worker's refused devices and expiry cut, the config defaults,
the NodeAuthenticator's device check."""
from __future__ import annotations

import asyncio
import time

import pytest

from fastpath.control.hy2scale.config import parse_scale_config
from fastpath.config.fields import ConfigError
from fastpath.hy2.server.auth_backends import NodeAuthenticator
from fastpath.store import StateStore, User
from fastpath.worker.user_directory import UserDirectory


@pytest.fixture
def users(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.create_user(User("u1", "alice:pw"))
    store.create_user(User("u2", "bob:pw", expiry=time.time() + 3600))
    return UserDirectory(store)


def test_defaults_follow_the_reference():
    s = parse_scale_config(None)
    assert (s.kick_refusal, s.token_ttl, s.layout_ping, s.enabled) == (60.0, 12 * 3600.0, 20.0, True)
    assert parse_scale_config({"kickRefusal": "5s"}).kick_refusal == 5.0
    with pytest.raises(ConfigError):
        parse_scale_config({"kickRefusl": "5s"})
    with pytest.raises(ConfigError):
        parse_scale_config({"layoutPoll": "0s"})


def test_a_refused_device_is_refused_at_auth_until_its_time_is_up(users):
    closed = []
    users.on_device_cutoff(lambda uid, ip: closed.append((uid, ip)) or 3)
    assert users.refuse_device("u1", "10.0.0.1", 0.3) == 3
    assert closed == [("u1", "10.0.0.1")]
    auth = NodeAuthenticator(users)

    def check(addr, secret="alice:pw"):
        return asyncio.run(auth.authenticate(addr, secret, 0))

    assert check("10.0.0.1:4000") is None
    assert check("10.0.0.2:4000") == "u1"              # another address of the same user
    assert check("10.0.0.1:4000", "bob:pw") == "u2"    # another user from the same address
    users.refuse_device("u2", "::1", 0.3)
    assert check("[::1]:9", "bob:pw") is None
    time.sleep(0.35)
    assert check("10.0.0.1:4000") == "u1" and check("[::1]:9", "bob:pw") == "u2"
    assert users.refused_devices == {}


def test_expiry_is_cut_when_it_passes(users):
    cut = []
    users.on_cutoff(lambda ids: cut.append(set(ids)))
    now = time.time()
    assert users.check_expiry(now) == set() and cut == []
    assert users.check_expiry(now + 3601) == {"u2"} and cut == [{"u2"}]
    assert users.check_expiry(now + 3602) == set()     # cut once
    assert users.next_expiry == float("inf")
