"""Grant tables, Xen's side: map, unmap and copy through another domain's grant entries.

Xen checks the granter's entry, pins it (GTF_reading / GTF_writing) while it is
mapped, and records the mapping in the grantee's *maptrack* table
(xen/common/grant_table.c: __gnttab_map_grant_ref, __gnttab_unmap_grant_ref, __gnttab_copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vmlab.hardware.memory import PAGE_SIZE, PageType
from vmlab.hypervisor import constants as C
from vmlab.io.grant_table import (GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_device_map, GNTMAP_host_map,
                                  GNTMAP_readonly, GNTST_bad_copy_arg, GNTST_bad_domain, GNTST_bad_gntref,
                                  GNTST_bad_handle, GNTST_bad_page, GNTST_general_error, GNTST_okay,
                                  GNTST_permission_denied, GTF_permit_access, GTF_readonly, GTF_reading,
                                  GTF_type_mask, GTF_writing, GrantTable, mix_stamp)

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["GrantTables", "MapTrack"]

_GRANTABLE_RW = (int(PageType.NONE), int(PageType.WRITABLE))
_MAP_KINDS = GNTMAP_host_map | GNTMAP_device_map


def _add(counts: np.ndarray, idx: np.ndarray, delta: int, unique: bool) -> None:
    """counts[idx] += delta for every occurrence in idx (a plain fancy add when idx has no repeats)."""
    if unique:
        counts[idx] += delta
    elif idx.size:
        np.add.at(counts, idx, delta)


@dataclass(slots=True)
class MapTrack:
    """The grantee's record of its live mappings (Xen's maptrack table)."""

    handles: dict[int, tuple[int, int, int, bool]] = field(default_factory=dict)  # handle -> (granter, ref, mfn, ro)
    by_mfn: dict[int, list[int]] = field(default_factory=dict)                     # mfn -> [ro maps, rw maps]
    next_handle: int = 0


class GrantTables:
    """Every domain's grant table and maptrack on one hypervisor, plus counters."""

    def __init__(self, hv: "Hypervisor") -> None:
        self.hv = hv
        self.tables: dict[int, GrantTable] = {}
        self.maptrack: dict[int, MapTrack] = {}
        self.counts = {"map": 0, "unmap": 0, "copy": 0, "copy_bytes": 0, "refused": 0}
        # The first bytes of frames that hold an Ethernet frame: (dst MAC, src MAC). Part of
        # the frame's content that a stamp cannot carry; copies move it with the data.
        self.headers: dict[int, tuple[str, str]] = {}

    def table(self, domid: int) -> GrantTable:
        t = self.tables.get(domid)
        if t is None:
            t = self.tables[domid] = GrantTable(domid)
        return t

    def track(self, domid: int) -> MapTrack:
        m = self.maptrack.get(domid)
        if m is None:
            m = self.maptrack[domid] = MapTrack()
        return m

    # --- Xen's side -------------------------------------------------------------
    def map_one(self, caller: int, ref: int, granter: int, flags: int, pins: list | None = None) -> tuple[int, int, int]:
        """One gnttab_map_grant_ref: returns (status, handle, mfn).

        The frame's reference counts go up here, or, when `pins` is given, the caller
        applies them for a whole batch at once (pins gets (mfn, writable)).
        """
        if not flags & (GNTMAP_host_map | GNTMAP_device_map):
            return GNTST_bad_gntref, -1, -1
        if granter not in self.hv.domains:
            return GNTST_bad_domain, -1, -1
        t = self.tables.get(granter)
        if t is None or not 0 <= ref < t.nr_entries:
            return GNTST_bad_gntref, -1, -1
        gflags = t.flags[ref]
        readonly = bool(flags & GNTMAP_readonly)
        if (gflags & GTF_type_mask) != GTF_permit_access or t.domid_of[ref] != caller:
            return GNTST_permission_denied, -1, -1
        if not readonly and gflags & GTF_readonly:
            return GNTST_permission_denied, -1, -1
        mfn = t.frame[ref]
        mem = self.hv.memory
        if not 0 <= mfn < mem.total_frames or mem.owner.item(mfn) != granter:
            return GNTST_general_error, -1, -1  # "Could not pin the granted frame"
        if not readonly and mem.page_type.item(mfn) not in _GRANTABLE_RW:
            return GNTST_general_error, -1, -1  # a page table never becomes writable to anyone
        if readonly:
            t.pin_read[ref] += 1
            t.flags[ref] = gflags | GTF_reading
        else:
            t.pin_write[ref] += 1
            t.flags[ref] = gflags | GTF_writing | GTF_reading
        if pins is not None:
            pins.append((mfn, not readonly))
        else:
            if not readonly:
                mem.type_count[mfn] += 1
            mem.tot_count[mfn] += 1
        mt = self.track(caller)
        handle = mt.next_handle
        mt.next_handle += 1
        mt.handles[handle] = (granter, ref, mfn, readonly)
        c = mt.by_mfn.get(mfn)
        if c is None:
            c = mt.by_mfn[mfn] = [0, 0]
        c[0 if readonly else 1] += 1
        self.counts["map"] += 1
        return GNTST_okay, handle, mfn

    def unmap_one(self, caller: int, handle: int, unpins: list | None = None, logging: bool | None = None) -> int:
        """One gnttab_unmap_grant_ref (reference counts batched through `unpins` like map_one)."""
        mt = self.maptrack.get(caller)
        rec = mt.handles.pop(handle, None) if mt is not None else None
        if rec is None:
            return GNTST_bad_handle
        granter, ref, mfn, readonly = rec
        c = mt.by_mfn[mfn]
        c[0 if readonly else 1] -= 1
        if c[0] == 0 and c[1] == 0:
            del mt.by_mfn[mfn]
        t = self.tables.get(granter)
        if t is not None and ref < t.nr_entries:
            self._unpin_entry(t, ref, readonly)
            # Xen marks a frame written through a writable mapping dirty for log-dirty migration.
            if not readonly and (self._logging if logging is None else logging):
                self._mark_dirty(granter, mfn)
        if unpins is not None:
            unpins.append((mfn, granter, not readonly))
        else:
            self._unpin([(mfn, granter, not readonly)])
        self.counts["unmap"] += 1
        return GNTST_okay

    def _pin(self, pins: list) -> None:
        if pins:
            mem = self.hv.memory
            m, w = zip(*pins)
            unique = len(set(m)) == len(m)
            mfns = np.array(m, dtype=np.int64)
            _add(mem.tot_count, mfns, 1, unique)
            _add(mem.type_count, mfns[np.array(w, dtype=bool)], 1, unique)

    def _unpin(self, unpins: list) -> None:
        # Only frames still owned by the granter carry the counts (a dead granter's frames were freed).
        mem = self.hv.memory
        for mfn, granter, writable in unpins:
            if mem.owner.item(mfn) == granter:
                if mem.tot_count.item(mfn) > 0:
                    mem.tot_count[mfn] -= 1
                if writable and mem.type_count.item(mfn) > 0:
                    mem.type_count[mfn] -= 1

    def map_many(self, caller: int, ops) -> tuple[list[int], list[int], list[int], list[int]]:
        """A batch of gnttab_map_grant_ref, one op at a time in order, reference counts applied at the end.

        The loop is map_one inlined for a grant that maps cleanly (blkback's hot path);
        any op that would fail goes through map_one, which gives it its exact status.
        Returns (status, handle, mfn) per op and the indices of GNTMAP_device_map ops.
        """
        status, handles, mfns, pins, device = [], [], [], [], []
        domains, tables, mem = self.hv.domains, self.tables, self.hv.memory
        owner, ptype, total = mem.owner.item, mem.page_type.item, mem.total_frames
        mt = self.maptrack.get(caller)
        fast, last, t, live = 0, None, None, False
        tflags = tframe = tdom = pr = pw = ()
        for op in ops:
            get = op.get
            ref, granter, flags = get("ref", -1), get("dom", C.DOMID_INVALID), get("flags", 0)
            if granter != last:  # a batch names one granter: look its table up once
                last, t, live = granter, tables.get(granter), granter in domains
                if t is not None:  # the entry lists (grow extends them in place)
                    tflags, tframe, tdom, pr, pw = t.flags, t.frame, t.domid_of, t.pin_read, t.pin_write
            ro = bool(flags & GNTMAP_readonly)
            if flags & GNTMAP_device_map:
                device.append(len(status))
            ok = False
            if t is not None and flags & _MAP_KINDS and 0 <= ref < len(tflags) and live:
                gflags, mfn = tflags[ref], tframe[ref]
                ok = ((gflags & GTF_type_mask) == GTF_permit_access and tdom[ref] == caller
                      and (ro or not gflags & GTF_readonly) and 0 <= mfn < total and owner(mfn) == granter
                      and (ro or ptype(mfn) in _GRANTABLE_RW))
            if not ok:
                st, h, mfn = self.map_one(caller, ref, granter, flags, pins)  # refuses it, with its status
                status.append(st)
                handles.append(h)
                mfns.append(mfn)
                mt = self.maptrack.get(caller)
                continue
            if ro:
                pr[ref] += 1
                tflags[ref] = gflags | GTF_reading
            else:
                pw[ref] += 1
                tflags[ref] = gflags | GTF_writing | GTF_reading
            pins.append((mfn, not ro))
            if mt is None:
                mt = self.track(caller)
            h = mt.next_handle
            mt.next_handle = h + 1
            mt.handles[h] = (granter, ref, mfn, ro)
            c = mt.by_mfn.get(mfn)
            if c is None:
                c = mt.by_mfn[mfn] = [0, 0]
            c[0 if ro else 1] += 1
            fast += 1
            status.append(GNTST_okay)
            handles.append(h)
            mfns.append(mfn)
        self.counts["map"] += fast
        self._pin(pins)
        return status, handles, mfns, device

    def unmap_many(self, caller: int, handles) -> list[int]:
        """A batch of gnttab_unmap_grant_ref: unmap_one inlined, reference counts dropped at the end."""
        unpins: list = []
        logging = self._logging
        mt = self.maptrack.get(caller)
        pop, by_mfn = (mt.handles.pop, mt.by_mfn) if mt is not None else ({}.pop, {})
        tables, status, last, t = self.tables, [], None, None
        for handle in handles:
            rec = pop(handle, None)
            if rec is None:
                status.append(GNTST_bad_handle)
                continue
            granter, ref, mfn, ro = rec
            c = by_mfn[mfn]
            c[0 if ro else 1] -= 1
            if c[0] == 0 and c[1] == 0:
                del by_mfn[mfn]
            if granter != last:  # a batch's handles name one granter: look its table up once
                last, t = granter, tables.get(granter)
            if t is not None and ref < len(t.flags):
                pr, pw = t.pin_read, t.pin_write  # _unpin_entry, inlined on the hot path
                if ro:
                    pr[ref] -= 1
                else:
                    pw[ref] -= 1
                if pw[ref] == 0:
                    t.flags[ref] &= ~GTF_writing if pr[ref] else ~(GTF_writing | GTF_reading)
                if not ro and logging:  # log-dirty: a frame written through a writable mapping is dirty
                    self._mark_dirty(granter, mfn)
            unpins.append((mfn, granter, not ro))
            status.append(GNTST_okay)
        self.counts["unmap"] += len(unpins)
        self._unpin_batch(unpins)
        return status

    @staticmethod
    def _unpin_entry(t: GrantTable, ref: int, ro: bool) -> None:
        if ro:
            t.pin_read[ref] -= 1
        else:
            t.pin_write[ref] -= 1
        f = t.flags[ref]
        if t.pin_write[ref] == 0:
            f &= ~GTF_writing
            if t.pin_read[ref] == 0:
                f &= ~GTF_reading
        t.flags[ref] = f

    def _unpin_batch(self, unpins: list) -> None:
        if len(unpins) > 4:
            mem = self.hv.memory
            m, g, w = zip(*unpins)
            unique = len(set(m)) == len(m)
            m, g, w = np.array(m, dtype=np.int64), np.array(g), np.array(w, dtype=bool)
            keep = mem.owner[m] == g
            _add(mem.tot_count, m[keep], -1, unique)
            _add(mem.type_count, m[keep & w], -1, unique)
        else:
            self._unpin(unpins)

    @property
    def _logging(self) -> bool:
        return any(getattr(d, "dirty_bitmap", None) is not None for d in self.hv.domains.values())

    def _mark_dirty(self, domid: int, mfn: int) -> None:
        dom = self.hv.domains.get(domid)
        log = getattr(dom, "dirty_bitmap", None) if dom is not None else None
        if log is not None:
            pfns = (dom.p2m == mfn).nonzero()[0]
            log[pfns] = True

    def _copy_side(self, caller: int, side: dict, is_gref: bool, write: bool) -> tuple[int, int, GrantTable | None, int]:
        """Resolve one side of a copy: (status, mfn, table, ref)."""
        domid = side.get("domid", C.DOMID_SELF)
        domid = caller if domid == C.DOMID_SELF else domid
        if domid not in self.hv.domains:
            return GNTST_bad_domain, -1, None, -1
        if not is_gref:
            if domid != caller:  # a raw frame number only names the caller's own memory
                return GNTST_permission_denied, -1, None, -1
            dom = self.hv.domains[domid]
            gmfn = side.get("gmfn", -1)
            if not 0 <= gmfn < dom.p2m.size or dom.p2m[gmfn] == C.INVALID_MFN:
                return GNTST_bad_page, -1, None, -1
            return GNTST_okay, int(dom.p2m[gmfn]), None, -1
        t = self.tables.get(domid)
        ref = side.get("ref", -1)
        if t is None or not 0 <= ref < t.nr_entries:
            return GNTST_bad_gntref, -1, None, -1
        f = t.flags[ref]
        if (f & GTF_type_mask) != GTF_permit_access or t.domid_of[ref] != caller:
            return GNTST_permission_denied, -1, None, -1
        if write and f & GTF_readonly:
            return GNTST_permission_denied, -1, None, -1
        mfn = t.frame[ref]
        if not 0 <= mfn < self.hv.memory.total_frames or int(self.hv.memory.owner[mfn]) != domid:
            return GNTST_general_error, -1, None, -1
        return GNTST_okay, mfn, t, ref

    def copy_one(self, caller: int, op: dict) -> int:
        flags = op.get("flags", 0)
        length = op.get("len", 0)
        src, dst = op.get("source", {}), op.get("dest", {})
        if not isinstance(src, dict) or not isinstance(dst, dict):
            return GNTST_bad_copy_arg
        s_off, d_off = src.get("offset", 0), dst.get("offset", 0)
        if length < 0 or not (0 <= s_off and s_off + length <= PAGE_SIZE and 0 <= d_off and d_off + length <= PAGE_SIZE):
            return GNTST_bad_copy_arg
        st, s_mfn, _, _ = self._copy_side(caller, src, bool(flags & GNTCOPY_source_gref), write=False)
        if st != GNTST_okay:
            return st
        st, d_mfn, dt, _ = self._copy_side(caller, dst, bool(flags & GNTCOPY_dest_gref), write=True)
        if st != GNTST_okay:
            return st
        content = self.hv.memory.content
        src_stamp = int(content[s_mfn])
        if length == PAGE_SIZE or (s_off == 0 and d_off == 0):
            new = src_stamp  # the data keeps its identity when it lands where it started
        else:
            new = mix_stamp(src_stamp, s_off, d_off, length)
        if length:
            content[d_mfn] = new
            h = self.headers.get(s_mfn)
            if h is not None and s_off == 0 and d_off == 0:
                self.headers[d_mfn] = h
            if dt is not None:
                self._mark_dirty(dt.domid, d_mfn)
        self.counts["copy"] += 1
        self.counts["copy_bytes"] += int(length)
        return GNTST_okay

    # --- teardown ---------------------------------------------------------------
    def release_domain(self, domid: int) -> int:
        """Drop every mapping `domid` holds and every grant it issued. Returns mappings force-removed."""
        forced = 0
        mt = self.maptrack.get(domid)
        if mt is not None:
            for h in list(mt.handles):
                self.unmap_one(domid, h)
            del self.maptrack[domid]
        # Other domains' mappings of this domain's frames: a correct backend has unmapped
        # them already (disconnect runs first); anything left is removed and counted.
        for other, omt in list(self.maptrack.items()):
            for h, (granter, *_rest) in list(omt.handles.items()):
                if granter == domid:
                    self.unmap_one(other, h)
                    forced += 1
        self.tables.pop(domid, None)
        return forced

    def live_grants(self, domid: int) -> int:
        t = self.tables.get(domid)
        return 0 if t is None else sum(1 for f in t.flags if f & GTF_type_mask)

    def live_mappings(self, domid: int) -> int:
        mt = self.maptrack.get(domid)
        return 0 if mt is None else len(mt.handles)

    def frame_access(self, domid: int, mfn: int, *, write: bool = False) -> int:
        """0 if `domid` may read (write) frame `mfn`: it owns it or holds a live mapped grant; else -EPERM."""
        mem = self.hv.memory
        if not 0 <= mfn < mem.total_frames:
            return C.EINVAL
        if mem.owner.item(mfn) == domid:
            return 0
        mt = self.maptrack.get(domid)
        c = mt.by_mfn.get(mfn) if mt is not None else None
        if c is not None and (c[1] > 0 or (not write and c[0] > 0)):
            return 0
        self.counts["refused"] += 1
        self.hv.trace.record(time_ns=self.hv.now_ns, domid=domid, kind="refused",
                             detail=f"{'write' if write else 'read'} mfn {mfn}", value=C.EPERM)
        return C.EPERM


