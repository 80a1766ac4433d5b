"""A guest kernel's memory manager: address spaces, mmap/munmap, fork, exec, context switch.

It does to page tables what Linux does, under one of four schemes:

    native   the kernel owns the machine: it stores machine frame numbers straight into its tables
    pv       Xen PV direct paging: tables hold machine frames but are read-only to the guest;
             every change is an mmu_update/mmuext_op, batched Linux-style (below)
    shadow   HVM guest, tables hold guest frames; Xen shadows them (vmlab.paging.shadow)
    nested   HVM guest with EPT/NPT, tables hold guest frames; hardware walks both (vmlab.paging.nested)

PV batching follows Linux's lazy MMU mode (arch/x86/xen/multicalls.c): updates go into
a per-CPU multicall buffer of `batch_size` entries (MC_BATCH = 32), flushed when full
("slots"), before a TLB flush or CR3 load, before the guest touches memory, or on
demand; a flush of one entry is issued as a plain hypercall. Counters mirror Linux's
mc stats: batches, hypercalls (entries issued), batch_histo and flush_reasons.
Simplification: Linux also coalesces consecutive mmu_updates into one multicall entry
(up to MC_ARGS bytes); here every PTE update is its own entry. A flush enters Xen through
`vmlab.paging.direct.apply_updates` / `apply_ext_op` — the same validation code the
mmu_update, mmuext_op and multicall handlers run — and records one trace event per hypercall
(a long run of full batches is recorded as one "multicall xN" event).

Data pages are shared copy-on-write after fork (both sides read-only) and counted by a
per-frame reference count; a write to a COW page is counted as a fault, not resolved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vmlab.errors import CapacityError, ConfigError, VmlabError
from vmlab.hardware.mmu import PFEC_RSVD, PTE_P, PTE_RW, PTE_US, is_canonical, walk, walk_many
from vmlab.hardware.tlb import TLB
from vmlab.hypervisor import constants as C
from vmlab.paging import direct
from vmlab.paging.direct import MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT
from vmlab.paging.nested import EPT_VIOLATION, NestedTable, WalkCaches, walk_2d
from vmlab.paging.shadow import ShadowPaging

__all__ = ["GuestKernel", "AddressSpace", "SCHEMES", "MC_BATCH", "GuestKernelBug", "boot_kernel", "CYCLE_CATEGORIES"]

SCHEMES = ("native", "pv", "shadow", "nested")
MC_BATCH = 32   # arch/x86/xen/multicalls.c
_LINK = PTE_P | PTE_RW | PTE_US
STAT_KEYS = ("pt_writes", "pt_reads", "tlb_hits", "tlb_misses", "walk_refs", "hypercalls", "exits",
             "shadow_syncs", "faults", "cycles")
# where the estimated cycles go (stacked bars in the traffic explorer)
CYCLE_CATEGORIES = ("hypercall", "exit", "pte_update", "shadow_sync", "walk", "fault", "cr3")


class GuestKernelBug(VmlabError, RuntimeError):
    """The hypervisor refused an update the kernel model issued (Linux would BUG())."""


@dataclass(eq=False)
class AddressSpace:
    """One process's page tables: its L4 frame, its tables, and its pages (vpn -> pfn << 1 | writable)."""

    pid: int
    root: int
    tables: dict = field(default_factory=dict)   # (level, va >> (12 + 9 * level)) -> pfn
    pages: dict = field(default_factory=dict)


class GuestKernel:
    """The memory-management half of a guest kernel running in domain `domid` under `scheme`."""

    def _on_domain_destroyed(self, dom) -> None:
        """Give Xen's frames (shadow or nested tables) back when the domain dies."""
        if dom.domid != self.domid:
            return
        for tables in (self.shadow, self.nested):
            if tables is not None:
                tables.release()
        self.shadow = self.nested = None
        self.hv.destroy_hooks.remove(self._on_domain_destroyed)

    def __init__(self, hv, domid: int, *, scheme: str = "pv", batch_size: int = MC_BATCH, tlb_sets: int = 16,
                 tlb_ways: int = 4, nested_large_pages: bool = False, nested_tlb: int = 0, pwc: int = 0,
                 shadow_cache: int = 2, oos: bool = False, costs=None) -> None:
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
        populated = np.flatnonzero(self.p2m != C.INVALID_MFN)
        self.free: list[int] = populated[::-1].tolist()
        self.page_refs: dict[int, int] = {}
        self.procs: dict[int, AddressSpace] = {}
        self.current: AddressSpace | None = None
        self._next_pid = 1
        self.tlb = TLB(tlb_sets, tlb_ways)
        self.shadow = self.nested = self.caches = None
        if scheme == "pv":
            direct.pv_state(hv)
        elif scheme == "shadow":
            self.shadow = ShadowPaging(hv, domid, cache_size=shadow_cache, oos=oos)
        elif scheme == "nested":
            self.nested = NestedTable(hv, domid, large_pages=nested_large_pages)
            self.caches = WalkCaches(nested_tlb=nested_tlb, pwc=pwc) if (nested_tlb or pwc) else None
        if self.shadow is not None or self.nested is not None:
            hv.destroy_hooks.append(self._on_domain_destroyed)
        if costs is None:
            from vmlab.costs import preset
            costs = preset("xen_pv" if scheme == "pv" else "modern_kvm")
        self.costs = costs
        self.mc = {"batches": 0, "hypercalls": 0, "batch_histo": np.zeros(self.batch_size + 1, np.int64),
                   "flush_reasons": Counter()}
        self.stats: Counter = Counter({k: 0 for k in STAT_KEYS + tuple(f"cycles_{c}" for c in CYCLE_CATEGORIES)})
        self.log: list[tuple[str, dict]] = []
        self._queue: list = []
        self._qlen = 0

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
        pfns = np.asarray(pfns, np.int64)
        return self.p2m[pfns] if self.scheme in ("native", "pv") else pfns

    def _new_table(self) -> int:
        pfn = int(self._alloc(1)[0])
        mfn = int(self.p2m[pfn])
        if self.scheme == "pv" and self.mem.type_count[mfn] != 0:
            raise GuestKernelBug(f"pfn {pfn} is still in use as a page table; it cannot be zeroed")
        self.mem.table(mfn)[:] = 0   # clear_page() on a page that is not (yet) a table: a plain store
        return pfn

    # --- PV: the lazy-MMU multicall buffer ---------------------------------------------
    def _queue_mmu(self, ptrs: np.ndarray, vals: np.ndarray) -> None:
        self._queue.append(("mmu", np.asarray(ptrs, np.int64), np.asarray(vals, np.uint64).astype(np.int64)))
        self._qlen += len(ptrs)
        if self._qlen >= self.batch_size:
            self._flush_full()

    def _queue_ext(self, cmd: int, arg: int) -> None:
        self._queue.append(("ext", cmd, int(arg)))
        self._qlen += 1
        if self._qlen >= self.batch_size:
            self._flush_full()

    def _take(self, n: int) -> list:
        """Remove the first n entries from the queue (splitting a segment if needed)."""
        out, left = [], n
        while left:
            seg = self._queue[0]
            size = len(seg[1]) if seg[0] == "mmu" else 1
            if size <= left:
                out.append(self._queue.pop(0))
                left -= size
            else:
                out.append(("mmu", seg[1][:left], seg[2][:left]))
                self._queue[0] = ("mmu", seg[1][left:], seg[2][left:])
                left = 0
        self._qlen -= n
        return out

    def _issue(self, segs: list, sizes: list[int], reason: str) -> None:
        """Send entries to Xen as len(sizes) hypercalls and account for them."""
        for seg in segs:
            if seg[0] == "mmu":
                r = direct.apply_updates(self.hv, self.domid, seg[1], seg[2], batch_size=max(len(seg[1]), 1),
                                         record=False)
                if r.applied != r.updates:
                    bad = int(np.flatnonzero(r.results)[0])
                    raise GuestKernelBug(f"mmu_update of ptr {int(seg[1][bad]):#x} refused "
                                         f"({int(r.results[bad])}): {direct.explain(self.hv)}")
            else:
                rc = direct.apply_ext_op(self.hv, self.domid, seg[1], seg[2])
                if rc < 0:
                    raise GuestKernelBug(f"mmuext_op {seg[1]} on {seg[2]:#x} refused ({rc}): {direct.explain(self.hv)}")
        if len(sizes) <= 16:
            for s in sizes:
                self.hv.trace.record(time_ns=self.hv.now_ns, domid=self.domid, kind="hypercall",
                                     detail="multicall" if s > 1 else "mmu_update", value=s)
        else:   # one record for a run of full batches keeps the trace readable (and small)
            self.hv.trace.record(time_ns=self.hv.now_ns, domid=self.domid, kind="hypercall",
                                 detail=f"multicall x{len(sizes)}", value=sum(sizes))
        n = len(sizes)
        entries = sum(sizes)
        self.mc["batches"] += n
        self.mc["hypercalls"] += entries
        np.add.at(self.mc["batch_histo"], np.minimum(np.asarray(sizes, np.int64), self.batch_size), 1)
        self.mc["flush_reasons"][reason] += n
        self.stats["hypercalls"] += n
        self.stats["pt_writes"] += sum(len(s[1]) for s in segs if s[0] == "mmu")
        c = self.costs
        self._charge("hypercall", n * c.hypercall_roundtrip_cycles)
        self._charge("pte_update", entries * (c.multicall_per_entry_cycles + c.pv_queue_entry_cycles))

    def _flush_full(self) -> None:
        full = self._qlen // self.batch_size
        if full:
            self._issue(self._take(full * self.batch_size), [self.batch_size] * full, "slots")

    def flush(self, reason: str = "explicit") -> None:
        """Leave lazy MMU mode / xen_mc_flush(): issue whatever is queued as one hypercall."""
        if self._qlen:
            n = self._qlen
            self._issue(self._take(n), [n], reason)

    # --- writing page-table entries ------------------------------------------------------
    def _write_ptes(self, table_pfns, idx, vals, *, preserve_ad: bool = False) -> None:
        table_pfns = np.asarray(table_pfns, np.int64)
        idx = np.asarray(idx, np.int64)
        vals = np.asarray(vals, np.uint64)
        if table_pfns.size == 0:
            return
        if self.scheme == "pv":
            cmd = MMU_PT_UPDATE_PRESERVE_AD if preserve_ad else MMU_NORMAL_PT_UPDATE
            self._queue_mmu((self.p2m[table_pfns] << 12) | (idx << 3) | cmd, vals)
            return
        self.stats["pt_writes"] += int(table_pfns.size)
        self._charge("pte_update", int(table_pfns.size) * self.costs.native_pte_write_cycles)
        if self.scheme == "shadow":
            shadowed = np.zeros(table_pfns.size, bool)
            known = {g for t in self.shadow.trees.values() for g in t.shadow_of}
            if known:
                shadowed = np.isin(table_pfns, np.fromiter(known, np.int64, len(known)))
            before = dict(self.shadow.counters)
            for g, i, v in zip(table_pfns[shadowed].tolist(), idx[shadowed].tolist(), vals[shadowed].tolist()):
                self.shadow.guest_write(g, i, v)
            self._charge_shadow(before)
            table_pfns, idx, vals = table_pfns[~shadowed], idx[~shadowed], vals[~shadowed]
            if table_pfns.size == 0:
                return
        order = np.argsort(table_pfns, kind="stable")
        t_sorted = table_pfns[order]
        bounds = np.flatnonzero(np.concatenate(([True], t_sorted[1:] != t_sorted[:-1], [True])))
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            sel = order[a:b]
            self.mem.table(int(self.p2m[t_sorted[a]]))[idx[sel]] = vals[sel]

    def _charge_shadow(self, before: dict) -> None:
        c, now = self.costs, self.shadow.counters
        d = {k: now[k] - before.get(k, 0) for k in now}
        self.stats["exits"] += d["traps"] + d["shadow_faults"]
        self.stats["shadow_syncs"] += d["propagations"] + d["resyncs"] + d["builds"]
        self.stats["pt_reads"] += d["guest_reads"]
        self._charge("exit", d["traps"] * c.shadow_pte_write_trap_cycles
                     + d["shadow_faults"] * c.vmexit_roundtrip_cycles)
        self._charge("shadow_sync", d["resyncs"] * c.shadow_resync_cycles
                     + (d["shadow_faults"] + d["builds"]) * c.shadow_fill_cycles)

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
        if self.scheme == "pv":   # Linux pins a new mm's pgd before using it (xen_pgd_pin)
            self._queue_ext(MMUEXT["PIN_L4_TABLE"], int(self.p2m[aspace.root]))
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
        c = self.costs
        if self.scheme == "pv":
            self._queue_ext(MMUEXT["NEW_BASEPTR"], int(self.p2m[aspace.root]))
            self.flush("cr3")
        elif self.scheme == "shadow":
            before = dict(self.shadow.counters)
            self.shadow.load_cr3(aspace.root)
            self._charge_shadow(before)
            self.stats["exits"] += 1
            self._charge("exit", c.vmexit_roundtrip_cycles + c.shadow_cr3_switch_cycles)
        else:
            if self.caches is not None:
                self.caches.pwc.clear()   # the nested TLB is tagged by EPTP/VPID and survives a guest CR3 load
            self._charge("cr3", c.native_cr3_load_cycles)
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
        if self.scheme == "pv":
            self._queue_ext(MMUEXT["UNPIN_TABLE"], int(self.p2m[aspace.root]))
            self.flush("explicit")   # the frames must stop being tables before they are reused
        elif self.scheme == "shadow" and aspace.root in self.shadow.trees:
            self.shadow._drop_tree(aspace.root)
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
        if self.scheme == "pv":
            if vpns is None:
                self._queue_ext(MMUEXT["TLB_FLUSH_LOCAL"], 0)
            else:
                for v in np.asarray(vpns).tolist():
                    self._queue_ext(MMUEXT["INVLPG_LOCAL"], v << 12)
            self.flush("tlb_flush")
        elif self.scheme == "shadow":
            before = dict(self.shadow.counters)
            self.shadow.flush_tlb()
            self._charge_shadow(before)
        elif self.caches is not None:
            self.caches.pwc.clear()

    # --- the MMU side ------------------------------------------------------------------
    def translate(self, va: int, *, write: bool = False, user: bool = True) -> tuple[int, int | None]:
        """One TLB-miss walk under the scheme for the current process: (mfn or -1, #PF code or None)."""
        mfn, fault, _ = self._walk(int(va), write, user)
        return mfn, fault

    def _walk(self, va: int, write: bool, user: bool) -> tuple[int, int | None, int]:
        if self._qlen:
            self.flush("access")
        if self.current is None:
            raise ConfigError("no process is running; spawn() one first")
        c = self.costs
        if self.scheme in ("native", "pv"):
            r = walk(self.mem, int(self.p2m[self.current.root]), va, write=write, user=user)
            self.stats["walk_refs"] += r.refs
            self.stats["pt_reads"] += r.refs
            self._charge("walk", r.refs * c.tlb_miss_native_walk_ref_cycles)
            return r.frame, r.fault, r.refs
        if self.scheme == "shadow":
            before = dict(self.shadow.counters)
            mfn, fault, refs, _exits = self.shadow.translate(va, write=write, user=user)
            self._charge_shadow(before)
            self.stats["walk_refs"] += refs
            self.stats["pt_reads"] += refs
            self._charge("walk", refs * c.tlb_miss_native_walk_ref_cycles)
            return mfn, fault, refs
        r = walk_2d(self.nested, self.current.root, va, write=write, user=user, caches=self.caches)
        self.stats["walk_refs"] += r.refs
        self.stats["pt_reads"] += r.refs
        self._charge("walk", r.refs * c.nested_walk_ref_cycles)
        if r.fault == EPT_VIOLATION:
            self.stats["exits"] += 1
            return -1, EPT_VIOLATION, r.refs
        return r.mfn, r.fault, r.refs

    def access(self, vas, writes=None) -> dict:
        """Touch memory: every address goes through the TLB; misses walk; returns counts.

        Each distinct page is walked once for its translation (setting A/D, building
        shadows); a TLB miss on a page costs that page's walk references again. With
        nested walk caches the misses are walked one by one, in order.
        """
        vas = np.asarray(vas, np.int64)
        writes = np.zeros(vas.size, bool) if writes is None else np.asarray(writes, bool)
        if self._qlen:
            self.flush("access")
        vpns = vas >> 12
        uniq, inv = np.unique(vpns, return_inverse=True)
        wrote = np.zeros(uniq.size, bool)
        np.logical_or.at(wrote, inv, writes)
        frame = np.full(uniq.size, -1, np.int64)
        ok_read = np.zeros(uniq.size, bool)
        ok_write = np.zeros(uniq.size, bool)
        refs = np.zeros(uniq.size, np.int64)
        snap = dict(self.stats)
        todo = self._walk_pages(uniq, wrote, frame, ok_read, ok_write, refs)
        for k in np.flatnonzero(todo).tolist():
            v = int(uniq[k])
            mfn, fault, r = self._walk(v << 12, bool(wrote[k]), True)
            if fault is None:
                frame[k], ok_read[k], ok_write[k], refs[k] = mfn, True, bool(wrote[k]), r
            elif wrote[k]:
                mfn, fault, r = self._walk(v << 12, False, True)   # maybe readable, not writable
                frame[k], ok_read[k], refs[k] = mfn, fault is None, r
            else:
                refs[k] = r
        # the per-page walks above are bookkeeping (A/D, shadow builds); walk costs are charged per miss below
        per_ref = self.costs.nested_walk_ref_cycles if self.scheme == "nested" else self.costs.tlb_miss_native_walk_ref_cycles
        bookkeeping = self.stats["walk_refs"] - snap["walk_refs"]
        self.stats["walk_refs"] -= bookkeeping
        self.stats["pt_reads"] -= bookkeeping
        self._charge("walk", -bookkeeping * per_ref)
        ok = np.where(writes, ok_write[inv], ok_read[inv])
        miss = self.tlb.run(vpns, present=ok, frames=frame[inv], page_ids=inv)
        n_miss = int(miss.sum())
        faults = int((~ok).sum())
        if self.scheme == "nested" and self.caches is not None:
            walk_refs = self._cached_nested_misses(uniq, inv[miss], writes[miss])
        else:
            walk_refs = int(refs[inv][miss].sum())
        self.stats["tlb_hits"] += vas.size - n_miss
        self.stats["tlb_misses"] += n_miss
        self.stats["walk_refs"] += walk_refs
        self.stats["pt_reads"] += walk_refs
        self.stats["faults"] += faults
        self._charge("walk", walk_refs * per_ref)
        self._charge("fault", faults * self.costs.native_page_fault_cycles)
        self._record("access")
        return {"accesses": int(vas.size), "tlb_misses": n_miss, "walk_refs": walk_refs, "faults": faults}

    def _cached_nested_misses(self, uniq: np.ndarray, pages: np.ndarray, writes: np.ndarray) -> int:
        """References of a run of nested TLB misses with walk caches, one miss at a time.

        Exactly what `walk_2d(..., caches=...)` does per miss (same cache hits, misses and LRU
        order), but with each page's guest path worked out once up front.
        """
        c = self.caches
        root = self.current.root
        _, flt, _, reads = walk_many(self.mem, root, uniq, frame_of=self.p2m, set_ad=False)
        path = np.full((uniq.size, 4), -1, np.int64)
        for depth, (a, t) in enumerate(reads):
            path[a, depth] = t
        depth_reached = (path >= 0).sum(axis=1)
        fw, fltw, _, _ = walk_many(self.mem, root, uniq, writes=np.ones(uniq.size, bool), frame_of=self.p2m,
                                   set_ad=False)
        data = np.where(flt < 0, walk_many(self.mem, root, uniq, frame_of=self.p2m, set_ad=False)[0], -1)
        levels = {}
        nt, nt_size, pwc, pwc_size = c.nested_tlb, c.nested_tlb_size, c.pwc, c.pwc_size
        total = 0
        uvpn = uniq.tolist()
        paths, reached, read_ok, write_ok, datas = (path.tolist(), depth_reached.tolist(), (flt < 0).tolist(),
                                                    (fltw < 0).tolist(), data.tolist())

        def gpa(gfn: int) -> int:
            if nt_size:
                if gfn in nt:
                    nt.move_to_end(gfn)
                    c.nested_hits += 1
                    return 0
                c.nested_misses += 1
            lv = levels.get(gfn)
            if lv is None:
                lv = levels[gfn] = int(self.nested.levels_array(np.array([gfn]))[0])
            if nt_size:
                nt[gfn] = int(self.p2m[gfn])
                if len(nt) > nt_size:
                    nt.popitem(last=False)
            return lv

        for k, w in zip(pages.tolist(), writes.tolist()):
            vpn, pth = uvpn[k], paths[k]
            start, refs = 0, 0
            if pwc_size:
                for depth in (3, 2, 1):
                    key = (root, depth, vpn >> (36 - 9 * depth))
                    if key in pwc:
                        pwc.move_to_end(key)
                        c.pwc_hits += 1
                        start = depth
                        break
                else:
                    c.pwc_misses += 1
            r = reached[k]
            for depth in range(start, r):
                refs += gpa(pth[depth]) + 1
                if depth + 1 < r and pwc_size:
                    key = (root, depth + 1, vpn >> (36 - 9 * (depth + 1)))
                    pwc[key] = pth[depth + 1]
                    pwc.move_to_end(key)
                    if len(pwc) > pwc_size:
                        pwc.popitem(last=False)
            if read_ok[k] and (write_ok[k] or not w):
                refs += gpa(datas[k])
            total += refs
        return total

    def _walk_pages(self, uniq, wrote, frame, ok_read, ok_write, refs) -> np.ndarray:
        """Walk every distinct page once with numpy (A/D bits, translations, refs per miss).

        Fills the arrays in place; returns a mask of pages that need the one-by-one path
        (shadow faults, EPT violations, nested walk caches whose state is sequential).
        """
        n = uniq.size
        todo = np.zeros(n, bool)
        if self.scheme == "nested" and self.caches is not None:
            return ~todo
        if self.scheme in ("native", "pv"):
            root, frame_of = int(self.p2m[self.current.root]), None
        elif self.scheme == "nested":
            root, frame_of = self.current.root, self.p2m
        else:
            if self.shadow.out_of_sync:
                self.shadow._resync_all()
            root, frame_of = self.shadow.current.root, None
        fw, flt, rf, reads = walk_many(self.mem, root, uniq, writes=wrote, frame_of=frame_of)
        rf = rf.copy()
        redo = np.flatnonzero(wrote & (flt >= 0))
        read_ok = flt < 0
        fr = fw.copy()
        if redo.size and self.scheme != "shadow":
            f2, flt2, rf2, reads2 = walk_many(self.mem, root, uniq[redo], frame_of=frame_of)
            read_ok[redo] = flt2 < 0
            fr[redo] = f2
            rf[redo] = rf2
            if self.scheme == "nested":
                nested_read = np.zeros(n, np.int64)
                for a, t in reads2:
                    nested_read[redo[a]] += self.nested.levels_array(t)
        if self.scheme == "shadow":
            todo = flt >= 0                     # a shadow fault: Xen must look at the guest's table
            good = np.flatnonzero(~todo)
            if good.size:                       # copy A/D back into the guest's entries
                walk_many(self.mem, self.shadow.current.root_gfn, uniq[good], writes=wrote[good], user=False,
                          frame_of=self.p2m)
                self.shadow.counters["ad_syncs"] += int(good.size)
        if self.scheme == "nested":
            nested = np.zeros(n, np.int64)
            for a, t in reads:
                nested[a] += self.nested.levels_array(t)
            if redo.size:
                nested[redo] = nested_read[redo]
            ok = np.flatnonzero(read_ok)
            data_mfn = np.full(n, -1, np.int64)
            data_mfn[ok] = self.p2m[fr[ok]]
            nested[ok] += self.nested.levels_array(fr[ok])
            todo |= read_ok & (data_mfn < 0)
            todo |= (flt >= 0) & ((flt & PFEC_RSVD) != 0)   # a guest table outside the p2m: an EPT violation
            rf = rf + nested
            fr = np.where(read_ok, data_mfn, -1)
        sel = ~todo
        frame[sel] = np.where(read_ok, fr, -1)[sel]
        ok_read[sel] = read_ok[sel]
        ok_write[sel] = (wrote & (flt < 0))[sel]
        refs[sel] = rf[sel]
        return todo

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
            out.update({f"shadow_{k}": v for k, v in self.shadow.counters.items()})
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
    kind = DomainKind.PV if scheme in ("pv", "native") else DomainKind.HVM
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
