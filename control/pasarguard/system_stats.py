"""Host statistics (GetSystemStats) and the node's own process statistics (GetBackendStats).

Host: memory, cores, CPU use and network rates sampled every two seconds in the background
(a request reads the last sample, so it never waits), uptime since boot.

Backend: the reference reports the Go runtime of its core.  A fastpath node's "core" is the
supervisor and its children, so the fields carry their Python-process equivalents:
``num_goroutine`` = threads of all node processes, ``alloc`` = their resident memory,
``total_alloc`` = the sum of their peak resident memory, ``sys`` = their virtual memory,
``num_gc`` / ``pause_total_ns`` / ``live_objects`` = garbage collections, time spent in them
and objects tracked by the collector in this process, ``mallocs`` / ``frees`` = objects the
collector allocated / freed here (from its generation counters), ``uptime`` = seconds since the
supervisor started.
"""
from __future__ import annotations

import gc
import os
import time

import psutil

SAMPLE_SECONDS = 2.0


class HostSampler:
    def __init__(self):
        psutil.cpu_percent(None)
        self._net = psutil.net_io_counters()
        self._at = time.monotonic()
        self.cpu_usage = 0.0
        self.incoming = 0
        self.outgoing = 0

    def sample(self) -> None:
        now = time.monotonic()
        net = psutil.net_io_counters()
        elapsed = now - self._at
        if elapsed > 0:
            self.incoming = max(0, int((net.bytes_recv - self._net.bytes_recv) / elapsed))
            self.outgoing = max(0, int((net.bytes_sent - self._net.bytes_sent) / elapsed))
        self._net, self._at = net, now
        self.cpu_usage = float(psutil.cpu_percent(None))

    def snapshot(self, msg_class):
        mem = psutil.virtual_memory()
        return msg_class(mem_total=mem.total, mem_used=mem.total - mem.available,
                         cpu_cores=psutil.cpu_count() or 1, cpu_usage=self.cpu_usage,
                         incoming_bandwidth_speed=self.incoming,
                         outgoing_bandwidth_speed=self.outgoing,
                         uptime=max(0, int(time.time() - psutil.boot_time())))


class GcClock:
    """Time this process spends in garbage collection (``gc.callbacks``); one per process."""
    _instance: "GcClock | None" = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance.pause_ns = 0
            cls._instance._started = 0
            gc.callbacks.append(cls._instance._on_gc)
        return cls._instance

    def _on_gc(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.pause_ns += time.perf_counter_ns() - self._started
            self._started = 0


def _peak_rss(proc: psutil.Process) -> int:
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def node_processes(root_pid: int | None = None) -> list[psutil.Process]:
    """The supervisor (our parent) and all of its descendants, this process included."""
    try:
        root = psutil.Process(root_pid or os.getppid())
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [psutil.Process()]


def backend_stats(msg_class, gc_clock: GcClock, root_pid: int | None = None):
    procs = node_processes(root_pid)
    threads = rss = peak = vms = 0
    started = time.time()
    for proc in procs:
        try:
            with proc.oneshot():
                mem = proc.memory_info()
                threads += proc.num_threads()
                rss += mem.rss
                vms += mem.vms
                started = min(started, proc.create_time())
            peak += _peak_rss(proc)
        except psutil.Error:
            continue
    stats = gc.get_stats()
    collections = sum(s["collections"] for s in stats)
    collected = sum(s["collected"] for s in stats)
    live = len(gc.get_objects())
    return msg_class(num_goroutine=min(threads, 2**32 - 1), num_gc=min(collections, 2**32 - 1),
                     alloc=rss, total_alloc=max(peak, rss), sys=vms,
                     mallocs=live + collected, frees=collected, live_objects=live,
                     pause_total_ns=gc_clock.pause_ns,
                     uptime=max(0, min(int(time.time() - started), 2**32 - 1)))
