"""Data-plane worker processes: an event loop, one counter shard, the services."""
