"""Memory-virtualization benchmarks (issue 4): TLB + walker streams, PV build + fork, traffic explorer."""

from __future__ import annotations

from vmlab.guest.kernel import boot_kernel
from vmlab.guest.access import access_stream
from vmlab.guest import explore

N = 1_000_000
PAGES = 8192          # a 32 MiB working set: 128x the TLB's reach, so most accesses miss
_kernels: dict = {}


def _kernel(scheme: str, **kw):
    key = (scheme, tuple(sorted(kw.items())))
    if key not in _kernels:
        k = boot_kernel(scheme, memory_mib=64, host_memory_mib=512, dom0_mem_mib=64, **kw)
        pid = k.spawn()
        k.map(pid, 0x4000_0000, PAGES)
        _kernels[key] = (k, *access_stream("hot_cold", N, PAGES, seed=1))
    return _kernels[key]


def _stream(scheme: str, **kw) -> str:
    k, vas, writes = _kernel(scheme, **kw)
    r = k.access(vas, writes)
    return f"{r['tlb_misses']} misses, {r['walk_refs']} walk refs"


def bench_stream_native():
    """target <= 2 s: 1,000,000 accesses through TLB + walker (native)"""
    return _stream("native")


def bench_stream_pv():
    """target <= 2 s: 1,000,000 accesses through TLB + walker (PV direct paging)"""
    return _stream("pv")


def bench_stream_shadow():
    """target <= 2 s: 1,000,000 accesses through TLB + walker (shadow)"""
    return _stream("shadow")


def bench_stream_nested():
    """target <= 2 s: 1,000,000 accesses through TLB + walker (nested, 24-ref walks)"""
    return _stream("nested")


def bench_stream_nested_with_walk_caches():
    """target none (2 s not promised): 1,000,000 accesses, nested + nested TLB + PWC (each miss replayed through the caches in Python)"""
    return _stream("nested", nested_tlb=32, pwc=16)


def bench_build_and_fork_1gib_pv():
    """target <= 1 s: build and fork a 1 GiB address space under PV, batch 32"""
    k = boot_kernel("pv", memory_mib=1100, host_memory_mib=2048, dom0_mem_mib=256)
    pid = k.spawn()
    k.map(pid, 0x4000_0000, 262_144)
    k.fork(pid)
    k.flush()
    c = k.counters()
    return f"{c['mc_hypercalls']} updates in {c['batches']} hypercalls"


_batch = iter(range(2, 10_000))


def bench_traffic_explorer_update():
    """target <= 50 ms: traffic-explorer update at default size (batch-size change; first call cold, then only pv re-runs)"""
    explore.compare_schemes("fork", batch_size=next(_batch))
    return "fork scenario, 3 schemes"
