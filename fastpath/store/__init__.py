"""The node's state store (SQLite in the data dir): users, settings, carried traffic."""
from fastpath.store.state_store import Conflict, NotFound, StateStore, StoreError, User

__all__ = ["Conflict", "NotFound", "StateStore", "StoreError", "User"]
