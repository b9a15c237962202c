"""fastpath: a proxy and stream-relay node whose hot paths are compiled with Cython."""
__version__ = "0.1.0"
