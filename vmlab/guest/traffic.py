"""Page-table traffic: what each scheme costs, event by event, for the same guest work.

A *scenario* is a short script of what a kernel does (build an address space, touch
it, fork, context-switch, exec, munmap). `run_scenario` plays it on a fresh guest under
one scheme (`vmlab.guest.explore` turns runs into the columns widgets draw). Times are estimated cycles from a
`vmlab.costs` preset divided by `CPU_GHZ` — an ILLUSTRATIVE clock, not a measurement.

For the execution-paths model: `tlb_miss_cost(scheme)` gives the references and cycles
of one TLB miss, `pte_update_cost(scheme, k, batch_size)` the cost of k PTE updates.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError
from vmlab.guest.access import access_stream
from vmlab.guest.kernel import SCHEMES, GuestKernel, boot_kernel
from vmlab.paging.direct import apply_updates, pt_maddr
from vmlab.paging.nested import walk_refs

__all__ = ["SCENARIOS", "COUNTERS", "CPU_GHZ", "run_scenario", "tlb_miss_cost", "pte_update_cost"]

CPU_GHZ = 3.0   # ILLUSTRATIVE: converts estimated cycles to seconds for the time axis
BASE = 0x4000_0000
COUNTERS = ("pt_writes", "pt_reads", "tlb_hits", "tlb_misses", "walk_refs", "hypercalls", "exits",
            "shadow_syncs", "faults", "cycles")


def _touch(k: GuestKernel, pid: int, pages: int, n: int, workload: str, seed: int, write_fraction: float) -> None:
    vas, writes = access_stream(workload, n, pages, base=BASE, write_fraction=write_fraction, seed=seed)
    k.access(vas, writes)


def _fork(k, pages, accesses, workload, seed):
    """A shell builds its heap, touches it, forks; the child reads, execs a small program and exits."""
    sh = k.spawn()
    k.map(sh, BASE, pages)
    _touch(k, sh, pages, accesses, workload, seed, 0.3)
    child = k.fork(sh)
    k.switch_to(child)
    _touch(k, child, pages, accesses // 4, workload, seed + 1, 0.0)
    k.exec(child)
    k.map(child, BASE, max(1, pages // 8))
    _touch(k, child, max(1, pages // 8), accesses // 4, workload, seed + 2, 0.3)
    k.exit(child)
    _touch(k, sh, pages, accesses // 4, workload, seed + 3, 0.3)


def _build(k, pages, accesses, workload, seed):
    """Build one large address space and touch it once (page-table writes dominate)."""
    p = k.spawn()
    k.map(p, BASE, pages)
    _touch(k, p, pages, max(1, accesses // 10), "sequential", seed, 0.0)


def _switch(k, pages, accesses, workload, seed):
    """Two processes take turns (context switches), each touching its own memory."""
    a = k.spawn()
    k.map(a, BASE, pages)
    b = k.fork(a)
    for r in range(6):
        pid = a if r % 2 == 0 else b
        k.switch_to(pid)
        _touch(k, pid, pages, max(1, accesses // 6), workload, seed + r, 0.0)


def _churn(k, pages, accesses, workload, seed):
    """mmap/munmap churn with a little work in between (a malloc-heavy program)."""
    p = k.spawn()
    k.map(p, BASE, pages)
    chunk = max(1, pages // 8)
    for r in range(8):
        va = BASE + (pages + 16) * 4096
        k.map(p, va, chunk)
        _touch(k, p, pages, max(1, accesses // 8), workload, seed + r, 0.3)
        k.unmap(p, va, chunk)


def _tlb(k, pages, accesses, workload, seed):
    """A TLB-miss-heavy program: few page-table changes, many accesses over a big footprint."""
    p = k.spawn()
    k.map(p, BASE, pages)
    _touch(k, p, pages, accesses * 4, "uniform", seed, 0.1)


SCENARIOS = {"fork": _fork, "build": _build, "switch": _switch, "mmap_churn": _churn, "tlb_heavy": _tlb}


def run_scenario(scheme: str, scenario: str = "fork", *, pages: int = 256, accesses: int = 4000,
                 workload: str = "hot_cold", batch_size: int = 32, seed: int = 0, **kernel_options) -> GuestKernel:
    """Play `scenario` on a fresh guest under `scheme`; returns the kernel (its log and counters)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario={scenario!r} is not one of {', '.join(SCENARIOS)}")
    if pages < 1 or accesses < 0:
        raise ConfigError(f"pages={pages}, accesses={accesses}: need pages >= 1 and accesses >= 0")
    memory_mib = max(16, (pages * 3 * 4096 >> 20) + 8)
    k = boot_kernel(scheme, memory_mib=memory_mib, host_memory_mib=max(256, 2 * memory_mib + 64),
                    dom0_mem_mib=32, batch_size=batch_size, **kernel_options)
    SCENARIOS[scenario](k, pages, accesses, workload, seed)
    k.flush()
    k._record("end")
    return k


def tlb_miss_cost(scheme: str, *, large_nested_pages: bool = False, costs=None) -> dict[str, float]:
    """References and cycles of one cold TLB miss (no walk caches) under a scheme.

    native, pv and shadow walk a 4-level table the hardware can use directly (4 refs);
    nested walks two dimensions: 24 refs, or 19 with 2 MiB nested pages.
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme={scheme!r} is not one of {', '.join(SCHEMES)}")
    if costs is None:
        from vmlab.costs import preset
        costs = preset("modern_kvm")
    if scheme == "nested":
        refs = walk_refs(4, 3 if large_nested_pages else 4)
        return {"refs": refs, "cycles": refs * costs.nested_walk_ref_cycles}
    return {"refs": 4, "cycles": 4 * costs.tlb_miss_native_walk_ref_cycles}


def pte_update_cost(scheme: str, updates: int, *, batch_size: int = 32) -> dict[str, float]:
    """Hypercalls / exits and cycles for `updates` PTE writes into live, shadowed tables.

    pv: really applies the updates on a scratch guest (`apply_updates`) and counts the
    hypercalls; shadow: one trap per write; nested and native: plain stores.
    """
    if updates < 0:
        raise ConfigError(f"updates={updates} must be >= 0")
    k = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, batch_size=batch_size)
    c = k.costs
    if scheme == "pv":
        pid = k.spawn()
        k.map(pid, BASE, 1)
        k.flush()
        l1 = int(k.p2m[k.procs[pid].tables[(1, BASE >> 21)]])
        frame = int(k.p2m[k.mappings(pid)[BASE >> 12]])
        slots = np.arange(updates) % 512
        vals = np.where(np.arange(updates) % 2 == 0, (frame << 12) | 5, (frame << 12) | 7)
        r = apply_updates(k.hv, k.domid, [pt_maddr(l1, s) for s in slots.tolist()], vals, batch_size=batch_size,
                          record=False)
        cycles = r.hypercalls * c.hypercall_roundtrip_cycles + updates * (c.multicall_per_entry_cycles +
                                                                        c.pv_queue_entry_cycles)
        return {"updates": updates, "hypercalls": r.hypercalls, "exits": 0, "cycles": cycles}
    if scheme == "shadow":
        return {"updates": updates, "hypercalls": 0, "exits": updates,
                "cycles": updates * c.shadow_pte_write_trap_cycles}
    return {"updates": updates, "hypercalls": 0, "exits": 0, "cycles": updates * c.native_pte_write_cycles}
