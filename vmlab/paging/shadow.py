"""Shadow paging: the hypervisor keeps the tables the hardware really walks.

The guest (an HVM guest without EPT, or a PV guest in shadow mode) writes its own
tables with guest frame numbers. The hypervisor builds *shadow* tables from them —
same shape, machine frames, in frames Xen owns — and points the real CR3 at the
shadow of the guest's L4. To keep shadows true it write-protects every guest page
that is shadowed, so each guest PTE write traps (a VM exit) and is propagated.
Shadows are built lazily: a TLB miss that finds a not-present shadow entry is a
*shadow fault* (an exit); Xen walks the guest table and either fills the shadow or
injects the guest's own #PF. Xen sets the guest's A/D bits at shadow-fault time, as
Xen 3.1's _sh_propagate: a shadow L1 entry is not present until the guest entry's A
bit is set and read-only until its D bit is set, so the first access and the first
write each fault once; nothing is copied back from the shadow. Shadows of recently used address spaces are kept in a
small cache keyed by the guest's L4, so switching back to one costs no rebuild.

`oos=True` models Xen's out-of-sync L1s: the first write to a shadowed guest L1
unprotects it (one trap), later writes are free, and the shadow is resynced (a full
rebuild of that L1) on the next TLB flush, CR3 load or shadow fault.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from vmlab.errors import ConfigError
from vmlab.hardware.mmu import PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_PS, PTE_RW, pte_frame, walk
from vmlab.hypervisor import constants as C

__all__ = ["ShadowPaging"]

_FLAGS = ~PTE_FRAME_MASK & ((1 << 64) - 1)


class _Tree:
    """The shadow of one guest address space: guest table gfn -> (level, shadow mfn)."""

    def __init__(self, root_gfn: int, root_smfn: int) -> None:
        self.root_gfn = root_gfn
        self.root = root_smfn
        self.shadow_of: dict[int, tuple[int, int]] = {root_gfn: (4, root_smfn)}
        self.parent: dict[int, tuple[int, int]] = {}   # shadow mfn -> (parent shadow mfn, index)


class ShadowPaging:
    """Shadow tables for one domain; counters `traps`, `builds`, `resyncs`, `shadow_faults`, ..."""

    def __init__(self, hv, domid: int, *, cache_size: int = 2, oos: bool = False) -> None:
        if cache_size < 1:
            raise ConfigError(f"cache_size={cache_size}: keep at least the current address space's shadow (>= 1)")
        self.hv = hv
        self.memory = hv.memory
        self.domid = domid
        self.p2m = hv.domains[domid].p2m
        self.cache_size = cache_size
        self.oos = oos
        self.trees: OrderedDict[int, _Tree] = OrderedDict()
        self.current: _Tree | None = None
        self.out_of_sync: set[int] = set()
        self.free_frames: list[int] = []
        hv.mapping_sources[f"shadow.{domid}.{id(self)}"] = self.mappings  # isolation.py reads the leaves
        hv.release_hooks.append(self._on_release)
        self.counters = {"traps": 0, "builds": 0, "resyncs": 0, "shadow_faults": 0, "injected_faults": 0,
                         "propagations": 0, "drops": 0, "guest_reads": 0, "shadow_writes": 0}

    # --- frames -----------------------------------------------------------------
    def _alloc(self) -> int:
        if self.free_frames:
            m = self.free_frames.pop()
        else:
            m = int(self.memory.allocate(C.DOMID_XEN, 1, what="shadow page table")[0])
        self.memory.table(m)[:] = 0
        return m

    def mappings(self, hv) -> tuple[list[tuple], tuple]:
        """The shadow L1 entries as references of the guest (Xen's tables count no references)."""
        refs = []
        for tree in self.trees.values():
            for level, smfn in tree.shadow_of.values():
                if level == 1:
                    w = self.memory.table(smfn)
                    e = w[(w & np.uint64(PTE_P)) != 0]
                    frames, rw = ((e & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64), (e & np.uint64(PTE_RW)) != 0
                    refs += [(self.domid, frames[rw], True, False, False, f"shadow L1 {smfn:#x}"),
                             (self.domid, frames[~rw], False, False, False, f"shadow L1 {smfn:#x}")]
        return refs, ()

    def _on_release(self, dom, pfns, mfns) -> None:
        """guest_remove_page -> shadow_drop_references (sh_remove_all_mappings): no shadow L1
        entry may keep mapping a frame that leaves the guest's physmap."""
        if dom.domid != self.domid:
            return
        gone = np.asarray(mfns, np.int64)
        for tree in self.trees.values():
            for level, smfn in tree.shadow_of.values():
                if level == 1:
                    w = self.memory.table(smfn)
                    frames = ((w & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
                    w[((w & np.uint64(PTE_P)) != 0) & np.isin(frames, gone)] = 0

    def release(self) -> None:
        self.hv.mapping_sources.pop(f"shadow.{self.domid}.{id(self)}", None)
        if self._on_release in self.hv.release_hooks:
            self.hv.release_hooks.remove(self._on_release)
        frames = [m for t in self.trees.values() for _, m in t.shadow_of.values()] + self.free_frames
        self.trees.clear()
        self.free_frames = []
        self.current = None
        if frames:
            self.memory.release(np.array(frames, np.int64), owner=C.DOMID_XEN)

    # --- building -----------------------------------------------------------------
    def _is_guest_table(self, gfn: int) -> bool:
        return any(gfn in t.shadow_of for t in self.trees.values())

    def _shadow_l1e(self, gpte: int) -> int:
        """A guest L1 entry with its gfn turned into an mfn (write-protected if it maps a table).

        _sh_propagate: not present until the guest's A bit is set, read-only until its D bit is."""
        if not gpte & PTE_P or not gpte & PTE_A:
            return 0
        gfn = pte_frame(gpte)
        if not 0 <= gfn < self.p2m.size or self.p2m[gfn] == C.INVALID_MFN:
            return 0   # no such guest frame: leave not-present, the fault goes to the guest
        flags = gpte & _FLAGS
        if self._is_guest_table(gfn) or not gpte & PTE_D:
            flags &= ~PTE_RW
        return (int(self.p2m[gfn]) << 12) | flags

    def _fill_l1(self, gmfn: int, smfn: int) -> None:
        g = self.memory.table(gmfn)
        s = self.memory.table(smfn)
        self.counters["guest_reads"] += 512
        present = np.flatnonzero(g & np.uint64(PTE_P))
        s[:] = 0
        for i in present.tolist():
            s[i] = np.uint64(self._shadow_l1e(int(g[i])))
        self.counters["shadow_writes"] += int(present.size)

    def _new_tree(self, root_gfn: int) -> _Tree:
        tree = _Tree(root_gfn, self._alloc())
        self.counters["builds"] += 1
        self.trees[root_gfn] = tree
        while len(self.trees) > self.cache_size:
            # the least recently used shadow goes (never the one just built; the old current
            # address space is being switched away from, so it may go too)
            old_gfn = next(g for g in self.trees if g != root_gfn)
            self._drop_tree(old_gfn)
        return tree

    def _drop_tree(self, gfn: int) -> None:
        tree = self.trees.pop(gfn)
        self.counters["drops"] += 1
        for _, m in tree.shadow_of.values():
            self.memory.table(m)[:] = 0
            self.free_frames.append(m)

    def _drop_subtree(self, tree: _Tree, gfn: int) -> None:
        """Forget the shadow of guest table gfn and everything below it in this tree."""
        ent = tree.shadow_of.pop(gfn, None)
        if ent is None:
            return
        level, smfn = ent
        self.counters["drops"] += 1
        if level > 1:
            gm = int(self.p2m[gfn])
            g = self.memory.table(gm)
            for i in np.flatnonzero(g & np.uint64(PTE_P)).tolist():
                child = pte_frame(int(g[i]))
                if child in tree.shadow_of and tree.shadow_of[child][0] == level - 1:
                    self._drop_subtree(tree, child)
        self.memory.table(smfn)[:] = 0
        self.free_frames.append(smfn)

    # --- what the guest does --------------------------------------------------------
    def load_cr3(self, root_gfn: int) -> None:
        """The guest loads CR3 (a trapped mov-to-cr3): switch to the cached shadow or build one."""
        self._resync_all()
        tree = self.trees.get(root_gfn)
        if tree is None:
            tree = self._new_tree(root_gfn)
        else:
            self.trees.move_to_end(root_gfn)
        self.current = tree

    def flush_tlb(self) -> None:
        self._resync_all()

    def guest_write(self, table_gfn: int, index: int, value: int) -> None:
        """The guest stores a PTE into its table page gfn (memory first; then the trap, if shadowed)."""
        gm = int(self.p2m[table_gfn])
        self.memory.table(gm)[index] = np.uint64(value)
        holders = [t for t in self.trees.values() if table_gfn in t.shadow_of]
        if not holders:
            return   # not a shadowed page: not write-protected, no trap
        if table_gfn in self.out_of_sync:
            return   # out of sync: writable to the guest until the next resync
        self.counters["traps"] += 1
        level = holders[0].shadow_of[table_gfn][0]
        if self.oos and level == 1:
            self.out_of_sync.add(table_gfn)
            return
        self._propagate(holders, table_gfn, index, value)

    def _propagate(self, holders, table_gfn: int, index: int, value: int) -> None:
        self.counters["propagations"] += 1
        for tree in holders:
            level, smfn = tree.shadow_of[table_gfn]
            s = self.memory.table(smfn)
            if level == 1:
                s[index] = np.uint64(self._shadow_l1e(value))
            else:
                old = int(s[index])
                if old & PTE_P:
                    # the entry may now point elsewhere: drop the old subtree, rebuild lazily
                    for child_gfn, (lvl, m) in list(tree.shadow_of.items()):
                        if m == pte_frame(old) and lvl == level - 1:
                            self._drop_subtree(tree, child_gfn)
                            break
                s[index] = 0
            self.counters["shadow_writes"] += 1

    def _resync_all(self) -> None:
        for gfn in sorted(self.out_of_sync):
            for tree in self.trees.values():
                ent = tree.shadow_of.get(gfn)
                if ent is not None:
                    self._fill_l1(int(self.p2m[gfn]), ent[1])
            self.counters["resyncs"] += 1
        self.out_of_sync.clear()

    # --- what the hardware does ----------------------------------------------------
    def translate(self, va: int, *, write: bool = False, user: bool = True):
        """A TLB miss: the hardware walks the shadow; a shadow fault is handled by Xen.

        Returns (mfn or -1, guest #PF error code or None, hardware references, exits).
        """
        if self.current is None:
            raise ConfigError("no CR3 loaded; call load_cr3(guest L4 gfn) first")
        hw_refs = exits = 0
        for _attempt in range(3):
            r = walk(self.memory, self.current.root, va, write=write, user=user, set_ad=True)
            hw_refs += r.refs
            if r.ok:
                return r.frame, None, hw_refs, exits
            # shadow fault: exit to Xen, which looks at the guest's own table
            exits += 1
            self.counters["shadow_faults"] += 1
            self._resync_all()
            g = walk(self.memory, self.current.root_gfn, va, write=write, user=user,
                     set_ad=True, frame_of=self._gfn_to_mfn)
            self.counters["guest_reads"] += g.refs
            if not g.ok:
                self.counters["injected_faults"] += 1
                return -1, g.fault, hw_refs, exits
            self._build_path(va)
        raise AssertionError(f"shadow for va {va:#x} did not converge")  # pragma: no cover

    def _gfn_to_mfn(self, gfn: int) -> int:
        if 0 <= gfn < self.p2m.size:
            return int(self.p2m[gfn])
        return -1

    def _build_path(self, va: int) -> None:
        """Fill the shadow entries along va's path from the guest's (valid) tables."""
        from vmlab.hardware.mmu import va_indices
        tree = self.current
        idx = va_indices(va)
        gfn, smfn = tree.root_gfn, tree.root
        for depth, level in enumerate((4, 3, 2)):
            g = self.memory.table(int(self.p2m[gfn]))
            gpte = int(g[idx[depth]])
            child_gfn = pte_frame(gpte)
            if gpte & PTE_PS:
                raise ConfigError("guest large pages are not modelled under shadow paging; map 4 KiB pages")
            ent = tree.shadow_of.get(child_gfn)
            if ent is None:
                child_smfn = self._alloc()
                tree.shadow_of[child_gfn] = (level - 1, child_smfn)
                self.counters["builds"] += 1
                if level - 1 == 1:
                    self._fill_l1(int(self.p2m[child_gfn]), child_smfn)
            else:
                child_smfn = ent[1]
            s = self.memory.table(smfn)
            s[idx[depth]] = np.uint64((child_smfn << 12) | (gpte & _FLAGS))
            self.counters["shadow_writes"] += 1
            gfn, smfn = child_gfn, child_smfn
        # the leaf: re-derive from the (possibly just A/D-updated) guest entry
        g = self.memory.table(int(self.p2m[gfn]))
        self.memory.table(smfn)[idx[3]] = np.uint64(self._shadow_l1e(int(g[idx[3]])))
