# cython: language_level=3
"""Byte-bounded LRU cache of HLS segments (and playlists) with request coalescing.

Every viewer of an HLS stream asks for the same few segments within a second or two.  The
first request for a key becomes the fetch; requests for the same key while it is in flight
wait for that one fetch (``claim`` hands them its future); later requests are served from
memory until the entry expires or is pushed out by newer ones.  The LRU list is intrusive
(each entry links its neighbours), so a hit is a dict lookup and four pointer moves.
"""
import asyncio


cdef class CacheEntry:
    """One cached body: ``data`` (bytes), ``meta`` (e.g. its content type), ``expires``."""
    cdef readonly object key
    cdef readonly bytes data
    cdef readonly object meta
    cdef readonly double expires
    cdef readonly double stored
    cdef CacheEntry prev
    cdef CacheEntry next

    def __repr__(self):
        return f"<CacheEntry {self.key!r} {len(self.data)} bytes>"


cdef class SegmentCache:
    cdef dict _map
    cdef dict _inflight
    cdef CacheEntry _head
    cdef CacheEntry _tail
    cdef readonly Py_ssize_t max_bytes
    cdef readonly Py_ssize_t max_entry
    cdef readonly Py_ssize_t held_bytes
    cdef readonly unsigned long long hits
    cdef readonly unsigned long long misses
    cdef readonly unsigned long long coalesced
    cdef readonly unsigned long long evictions
    cdef readonly unsigned long long stores

    def __cinit__(self, Py_ssize_t max_bytes, Py_ssize_t max_entry=-1):
        self._map = {}
        self._inflight = {}
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4 if max_entry < 0 else max_entry

    def __len__(self):
        return len(self._map)

    def __contains__(self, key):
        return key in self._map

    def get(self, key, double now):
        """The live entry for ``key`` (made most recently used), or None."""
        cdef CacheEntry e = self._map.get(key)
        if e is None:
            return None
        if e.expires <= now:
            self._remove(e)
            return None
        self._to_front(e)
        return e

    def put(self, key, bytes data, meta=None, double ttl=60.0, double now=0.0):
        """Store ``data`` for ``ttl`` seconds; bodies larger than ``max_entry`` are not kept.
        Returns the entry (kept or not)."""
        cdef CacheEntry e = CacheEntry.__new__(CacheEntry)
        cdef CacheEntry old
        e.key = key
        e.data = data
        e.meta = meta
        e.stored = now
        e.expires = now + ttl
        if ttl <= 0 or len(data) > self.max_entry:
            return e
        old = self._map.get(key)
        if old is not None:
            self._remove(old)
        self._map[key] = e
        self._link_front(e)
        self.held_bytes += len(data)
        self.stores += 1
        while self.held_bytes > self.max_bytes and self._tail is not None:
            self._remove(self._tail)
            self.evictions += 1
        return e

    def claim(self, key, double now):
        """Start a lookup: ``(entry, None)`` on a hit; ``(None, future)`` when a fetch of the key
        is already in flight (await the future, shielded); ``(None, None)`` when the caller is
        to fetch it and then call ``complete`` or ``fail``."""
        cdef CacheEntry e = self.get(key, now)
        if e is not None:
            self.hits += 1
            return e, None
        fut = self._inflight.get(key)
        if fut is not None:
            self.coalesced += 1
            return None, fut
        self.misses += 1
        self._inflight[key] = asyncio.get_running_loop().create_future()
        return None, None

    def pending(self, key):
        """The future of the fetch in flight for ``key``, or None."""
        return self._inflight.get(key)

    def complete(self, key, bytes data, meta=None, double ttl=60.0, double now=0.0):
        """The fetch of ``key`` finished: store it and wake everyone waiting on it."""
        e = self.put(key, data, meta, ttl, now)
        fut = self._inflight.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(e)
        return e

    def fail(self, key, exc):
        """The fetch of ``key`` failed: everyone waiting on it gets ``exc``."""
        fut = self._inflight.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)
            # Mark the exception retrieved: nobody may be waiting.
            fut.exception()

    def discard(self, key):
        cdef CacheEntry e = self._map.get(key)
        if e is not None:
            self._remove(e)

    def clear(self):
        while self._tail is not None:
            self._remove(self._tail)

    def purge_expired(self, double now):
        """Drop every expired entry (they would also go on lookup or under pressure)."""
        cdef CacheEntry e = self._tail
        cdef CacheEntry prev
        cdef int n = 0
        while e is not None:
            prev = e.prev
            if e.expires <= now:
                self._remove(e)
                n += 1
            e = prev
        return n

    def keys(self):
        """Keys, most recently used first."""
        out = []
        cdef CacheEntry e = self._head
        while e is not None:
            out.append(e.key)
            e = e.next
        return out

    # -- the intrusive list -------------------------------------------------------------------
    cdef inline void _link_front(self, CacheEntry e):
        e.prev = None
        e.next = self._head
        if self._head is not None:
            self._head.prev = e
        self._head = e
        if self._tail is None:
            self._tail = e

    cdef inline void _unlink(self, CacheEntry e):
        if e.prev is not None:
            e.prev.next = e.next
        else:
            self._head = e.next
        if e.next is not None:
            e.next.prev = e.prev
        else:
            self._tail = e.prev
        e.prev = None
        e.next = None

    cdef inline void _to_front(self, CacheEntry e):
        if self._head is e:
            return
        self._unlink(e)
        self._link_front(e)

    cdef void _remove(self, CacheEntry e):
        self._unlink(e)
        if self._map.get(e.key) is e:
            del self._map[e.key]
        self.held_bytes -= len(e.data)
