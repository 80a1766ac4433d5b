"""A guest kernel's memory manager: address spaces, mmap/munmap, fork, exec, context switch.

It does to page tables what Linux does, under one of four schemes, each a class in
`vmlab.guest.schemes` (what a PTE holds, how a write reaches the table, what a CR3
load, a TLB flush and a miss cost):

    native   the kernel owns the machine: it stores machine frame numbers straight into its tables
    pv       Xen PV direct paging: tables hold machine frames but are read-only to the guest;
             every change is an mmu_update/mmuext_op, batched Linux-style (`vmlab.guest.lazy_mmu`)
    shadow   HVM guest, tables hold guest frames; Xen shadows them (vmlab.paging.shadow)
    nested   HVM guest with EPT/NPT, tables hold guest frames; hardware walks both (vmlab.paging.nested)

Data pages are shared copy-on-write after fork (both sides read-only) and counted by a
per-frame reference count; a write to a COW page is counted as a fault, not resolved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vmlab.errors import CapacityError, ConfigError
from vmlab.guest.lazy_mmu import MC_BATCH, GuestKernelBug, LazyMMU
from vmlab.guest.mmu_side import MMUSide
from vmlab.guest.schemes import SCHEME_CLASSES, SCHEMES
from vmlab.hardware.mmu import PTE_P, PTE_RW, PTE_US, is_canonical
from vmlab.hardware.tlb import TLB
from vmlab.hypervisor import constants as C

__all__ = ["GuestKernel", "AddressSpace", "SCHEMES", "MC_BATCH", "GuestKernelBug", "boot_kernel", "CYCLE_CATEGORIES"]

_LINK = PTE_P | PTE_RW | PTE_US
STAT_KEYS = ("pt_writes", "pt_reads", "tlb_hits", "tlb_misses", "walk_refs", "hypercalls", "exits",
             "shadow_syncs", "faults", "cycles")
# where the estimated cycles go (stacked bars in the traffic explorer)
CYCLE_CATEGORIES = ("hypercall", "exit", "pte_update", "shadow_sync", "walk", "fault", "cr3")


@dataclass(eq=False)
class AddressSpace:
    """One process's page tables: its L4 frame, its tables, and its pages (vpn -> pfn << 1 | writable)."""

    pid: int
    root: int
    tables: dict = field(default_factory=dict)   # (level, va >> (12 + 9 * level)) -> pfn
    pages: dict = field(default_factory=dict)


class GuestKernel(MMUSide):
    """The memory-management half of a guest kernel running in domain `domid` under `scheme`."""

    def _on_domain_destroyed(self, dom) -> None:
        """Give Xen's frames (shadow or nested tables) back when the domain dies."""
        if dom.domid != self.domid:
            return
        self.paging.release()
        self.shadow = self.nested = None
        self.hv.destroy_hooks.remove(self._on_domain_destroyed)

    def __init__(self, hv, domid: int, *, scheme: str = "pv", batch_size: int = MC_BATCH, tlb_sets: int = 16,
                 tlb_ways: int = 4, costs=None, **scheme_options) -> None:
        """scheme_options: nested_large_pages, nested_tlb, pwc (nested); shadow_cache, oos (shadow)."""
        if scheme not in SCHEMES:
            raise ConfigError(f"scheme={scheme!r} is not one of {', '.join(SCHEMES)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1 (Linux's MC_BATCH is 32; 1 = no batching)")
        if domid not in hv.domains:
            raise ConfigError(f"domid={domid} does not exist; create the domain first")
        self.hv, self.domid, self.scheme, self.batch_size = hv, domid, scheme, int(batch_size)
        self.dom = hv.domains[domid]
        self.mem = hv.memory
        self.p2m = self.dom.p2m
        self.free: list[int] = np.flatnonzero(self.p2m != C.INVALID_MFN)[::-1].tolist()
        self.page_refs: dict[int, int] = {}
        self.procs: dict[int, AddressSpace] = {}
        self.current: AddressSpace | None = None
        self._next_pid = 1
        self.tlb = TLB(tlb_sets, tlb_ways)
        self.batch = LazyMMU(self, self.batch_size)
        self.mc = self.batch.mc
        self.paging = SCHEME_CLASSES[scheme](self, **scheme_options)
        self.shadow = getattr(self.paging, "shadow", None)
        self.nested = getattr(self.paging, "nested", None)
        self.caches = getattr(self.paging, "caches", None)
        if self.paging.keeps_xen_tables:
            hv.destroy_hooks.append(self._on_domain_destroyed)
        if costs is None:
            from vmlab.costs import preset
            costs = preset(self.paging.cost_preset)
        self.costs = costs
        self.stats: Counter = Counter({k: 0 for k in STAT_KEYS + tuple(f"cycles_{c}" for c in CYCLE_CATEGORIES)})
        self.log: list[tuple[str, dict]] = []

    # --- frames ---------------------------------------------------------------------
    def _alloc(self, n: int) -> np.ndarray:
        if n > len(self.free):
            raise CapacityError(f"guest {self.dom.name} needs {n} free pages but has {len(self.free)}; "
                                "give it more memory or unmap something")
        out = self.free[-n:][::-1] if n else []
        del self.free[len(self.free) - n:]
        return np.asarray(out, np.int64)

    def _frame(self, pfns: np.ndarray) -> np.ndarray:
        """What the scheme stores in a PTE for these pfns: mfns (native, pv) or gfns (shadow, nested)."""
        return self.paging.frame(np.asarray(pfns, np.int64))

    def _new_table(self) -> int:
        pfn = int(self._alloc(1)[0])
        mfn = int(self.p2m[pfn])
        self.paging.check_new_table(pfn, mfn)
        self.mem.table(mfn)[:] = 0   # clear_page() on a page that is not (yet) a table: a plain store
        return pfn

    # --- PV: the lazy-MMU multicall buffer ---------------------------------------------
    @property
    def _qlen(self) -> int:
        """Entries waiting in the multicall buffer (always 0 outside pv)."""
        return self.batch.queued

    def flush(self, reason: str = "explicit") -> None:
        """Leave lazy MMU mode / xen_mc_flush(): issue whatever is queued as one hypercall."""
        self.batch.flush(reason)

    # --- writing page-table entries ------------------------------------------------------
    def _write_ptes(self, table_pfns, idx, vals, *, preserve_ad: bool = False) -> None:
        table_pfns = np.asarray(table_pfns, np.int64)
        if table_pfns.size:
            self.paging.write_ptes(table_pfns, np.asarray(idx, np.int64), np.asarray(vals, np.uint64), preserve_ad)

    def _tables_for(self, aspace: AddressSpace, vpns: np.ndarray) -> np.ndarray:
        """Make sure L3/L2/L1 tables exist for these pages (linking new ones); return each page's L1 pfn."""
        links = []
        for level in (3, 2, 1):
            shift = 9 * level   # vpn >> shift = va >> (12 + 9 * level)
            for p in np.unique(vpns >> shift).tolist():
                if (level, p) in aspace.tables:
                    continue
                pfn = self._new_table()
                aspace.tables[(level, p)] = pfn
                parent = aspace.root if level == 3 else aspace.tables[(level + 1, p >> 9)]
                links.append((parent, p & 511, (int(self._frame([pfn])[0]) << 12) | _LINK))
        if links:
            t, i, v = zip(*links)
            self._write_ptes(np.array(t), np.array(i), np.array(v, np.uint64))
        uniq, inv = np.unique(vpns >> 9, return_inverse=True)
        return np.array([aspace.tables[(1, p)] for p in uniq.tolist()], np.int64)[inv]

    # --- processes --------------------------------------------------------------------
    def _new_aspace(self) -> AddressSpace:
        aspace = AddressSpace(pid=self._next_pid, root=self._new_table())
        self._next_pid += 1
        self.procs[aspace.pid] = aspace
        self.paging.new_aspace(aspace)   # PV: Linux pins a new mm's pgd before using it (xen_pgd_pin)
        return aspace

    def spawn(self) -> int:
        """A new process with an empty address space; returns its pid (the first becomes current)."""
        aspace = self._new_aspace()
        if self.current is None:
            self.switch_to(aspace.pid)
        self._record("spawn")
        return aspace.pid

    def _aspace(self, pid: int) -> AddressSpace:
        if pid not in self.procs:
            raise ConfigError(f"pid {pid} does not exist in guest {self.dom.name}; pids: {sorted(self.procs)}")
        return self.procs[pid]

    def map(self, pid: int, va: int, npages: int, *, writable: bool = True, pfns=None) -> np.ndarray:
        """mmap + populate: map `npages` fresh pages at va (page aligned); returns their pfns."""
        aspace = self._aspace(pid)
        va, npages = int(va), int(npages)
        if va % 4096 or npages < 1 or not is_canonical(va) or not is_canonical(va + npages * 4096 - 1) \
                or va >= 1 << 47:
            raise ConfigError(f"va={va:#x}, npages={npages}: need a page-aligned user address below 2**47 and npages >= 1")
        vpns = (va >> 12) + np.arange(npages, dtype=np.int64)
        if any(v in aspace.pages for v in (vpns[0], vpns[-1])) or \
                (npages < 4096 and any(v in aspace.pages for v in vpns.tolist())):
            raise ConfigError(f"va {va:#x}..+{npages} pages overlaps an existing mapping; unmap it first")
        if pfns is None:
            pfns = self._alloc(npages)
            for p in pfns.tolist():
                self.page_refs[p] = 1
        else:
            pfns = np.asarray(pfns, np.int64)
            for p in pfns.tolist():
                self.page_refs[p] = self.page_refs.get(p, 0) + 1
        l1 = self._tables_for(aspace, vpns)
        flags = PTE_P | PTE_US | (PTE_RW if writable else 0)
        vals = (self._frame(pfns).astype(np.uint64) << np.uint64(12)) | np.uint64(flags)
        self._write_ptes(l1, vpns & 511, vals)
        aspace.pages.update(zip(vpns.tolist(), ((pfns << 1) | int(writable)).tolist()))
        self._record("map")
        return pfns

    def unmap(self, pid: int, va: int, npages: int) -> int:
        """munmap: clear the PTEs, flush the TLB, free pages nobody else maps. Returns pages unmapped."""
        aspace = self._aspace(pid)
        vpns = [v for v in ((int(va) >> 12) + np.arange(int(npages))).tolist() if v in aspace.pages]
        if not vpns:
            return 0
        vpns = np.asarray(vpns, np.int64)
        l1 = np.array([aspace.tables[(1, v >> 9)] for v in vpns.tolist()], np.int64)
        self._write_ptes(l1, vpns & 511, np.zeros(vpns.size, np.uint64))
        freed = []
        for v in vpns.tolist():
            pfn = aspace.pages.pop(v) >> 1
            self.page_refs[pfn] -= 1
            if self.page_refs[pfn] == 0:
                del self.page_refs[pfn]
                freed.append(pfn)
        if aspace is self.current:
            self._tlb_flush(vpns if vpns.size <= 32 else None)
        self.free.extend(freed[::-1])
        self._record("unmap")
        return int(vpns.size)

    def fork(self, pid: int) -> int:
        """Copy the address space: child maps every page read-only (COW), parent's writable PTEs lose RW."""
        parent = self._aspace(pid)
        child = self._new_aspace()
        if parent.pages:
            vpns = np.fromiter(parent.pages.keys(), np.int64, len(parent.pages))
            codes = np.fromiter(parent.pages.values(), np.int64, len(parent.pages))
            pfns, w = codes >> 1, (codes & 1).astype(bool)
            l1c = self._tables_for(child, vpns)
            ro = (self._frame(pfns).astype(np.uint64) << np.uint64(12)) | np.uint64(PTE_P | PTE_US)
            self._write_ptes(l1c, vpns & 511, ro)
            if w.any():   # ptep_set_wrprotect on the parent's writable PTEs (A/D preserved)
                uniq, inv = np.unique(vpns[w] >> 9, return_inverse=True)
                l1p = np.array([parent.tables[(1, p)] for p in uniq.tolist()], np.int64)[inv]
                self._write_ptes(l1p, vpns[w] & 511, ro[w], preserve_ad=True)
            for p in pfns.tolist():
                self.page_refs[p] += 1
            child.pages = dict(zip(vpns.tolist(), (pfns << 1).tolist()))
            parent.pages = dict(child.pages)
            if parent is self.current:
                self._tlb_flush(None)
        self._record("fork")
        return child.pid

    def switch_to(self, pid: int) -> None:
        """Context switch: load the process's L4 into CR3 (flushes non-global TLB entries)."""
        aspace = self._aspace(pid)
        self.current = aspace
        self.tlb.flush(keep_global=True)
        self.paging.load_cr3(aspace)
        self._record("switch")

    def exec(self, pid: int) -> None:
        """execve: the process gets a fresh, empty address space; the old one is torn down."""
        old = self._aspace(pid)
        new = self._new_aspace()
        del self.procs[new.pid]
        new.pid = pid
        self.procs[pid] = new
        if old is self.current:
            self.switch_to(pid)
        self._teardown(old)
        self._record("exec")

    def exit(self, pid: int) -> None:
        """The process exits: its address space is torn down (switch away first if it is current)."""
        aspace = self._aspace(pid)
        if aspace is self.current:
            others = [p for p in self.procs if p != pid]
            if not others:
                raise ConfigError(f"pid {pid} is the last process; the kernel needs one to run")
            self.switch_to(others[0])
        del self.procs[pid]
        self._teardown(aspace)
        self._record("exit")

    def _teardown(self, aspace: AddressSpace) -> None:
        self.paging.teardown(aspace)
        freed = list(aspace.tables.values()) + [aspace.root]
        for code in aspace.pages.values():
            pfn = code >> 1
            self.page_refs[pfn] -= 1
            if self.page_refs[pfn] == 0:
                del self.page_refs[pfn]
                freed.append(pfn)
        self.free.extend(sorted(freed, reverse=True))

    def _tlb_flush(self, vpns) -> None:
        if vpns is None:
            self.tlb.flush(keep_global=True)
        else:
            for v in np.asarray(vpns).tolist():
                self.tlb.invlpg(v << 12)
        self.paging.flush_tlb(vpns)

    # --- inspection ----------------------------------------------------------------------
    def _charge(self, category: str, cycles: float) -> None:
        self.stats["cycles"] += cycles
        self.stats[f"cycles_{category}"] += cycles

    def _record(self, event: str) -> None:
        snap = dict(self.stats)
        snap["batches"] = self.mc["batches"]
        self.log.append((event, snap))

    def counters(self) -> dict:
        """Linux's mc stats plus the traffic counters, as plain numbers."""
        out = {k: float(v) if k.startswith("cycles") else int(v) for k, v in self.stats.items()}
        out.update(batches=self.mc["batches"], mc_hypercalls=self.mc["hypercalls"],
                   batch_histo=self.mc["batch_histo"].tolist(), flush_reasons=dict(self.mc["flush_reasons"]))
        if self.shadow is not None:
            out.update(self.paging.counters())
        return out

    def mappings(self, pid: int | None = None) -> dict[int, int]:
        """The kernel's own record of vpn -> pfn for a process (the current one by default)."""
        aspace = self.current if pid is None else self._aspace(pid)
        return {v: c >> 1 for v, c in aspace.pages.items()}

    def table_snapshot(self) -> dict[int, bytes]:
        """Every page-table frame of every process: pfn -> its 512 words as bytes (to compare runs)."""
        self.flush("explicit")
        out = {}
        for a in self.procs.values():
            for pfn in list(a.tables.values()) + [a.root]:
                out[pfn] = self.mem.table(int(self.p2m[pfn])).tobytes()
        return out


def boot_kernel(scheme: str = "pv", *, memory_mib: int = 64, host_memory_mib: int = 1024, dom0_mem_mib: int = 128,
                hv=None, name: str | None = None, **kernel_options) -> GuestKernel:
    """A fresh host + hypervisor (or `hv`) with one guest of `memory_mib`, and its kernel under `scheme`.

    The guest is PV for 'pv' and 'native', HVM for 'shadow' and 'nested'. The domain is
    built as libxc would: createdomain, max_mem, populate_physmap (all pfns), unpause.
    """
    from vmlab.hardware.host import Host, HostSpec
    from vmlab.hypervisor.domain import DomainConfig, DomainKind
    from vmlab.hypervisor.hypervisor import Hypervisor
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme={scheme!r} is not one of {', '.join(SCHEMES)}")
    if hv is None:
        hv = Hypervisor(Host(HostSpec(memory_mib=host_memory_mib)), dom0_mem_mib=dom0_mem_mib)
    kind = DomainKind(SCHEME_CLASSES[scheme].guest_kind)
    out: dict = {}
    cfg = DomainConfig(name=name or f"{scheme}-guest{len(hv.domains)}", kind=kind, memory_mib=memory_mib)
    rc = hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, cfg, out)
    if rc < 0:
        raise ConfigError(f"createdomain for {cfg.name} failed ({rc}); pick another name")
    domid = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], domid, memory_mib * 1024)
    n = memory_mib * 256
    done = hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, domid, n, np.arange(n, dtype=np.int64))
    if done != n:
        raise CapacityError(f"only {done} of {n} pages of {cfg.name} could be populated; "
                            f"give the host more than {host_memory_mib} MiB or the guest less")
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], domid)
    return GuestKernel(hv, domid, scheme=scheme, **kernel_options)
