"""Grant tables (v1): how a domain lets another domain reach one of its frames.

The granting domain writes an entry in its own grant table (shared with Xen, no
hypercall); the grantee asks Xen to map, unmap or copy through `grant_table_op`
(hypercall 20). Xen checks the entry, pins it (sets GTF_reading / GTF_writing)
while it is mapped, and remembers the mapping in the grantee's *maptrack* table.
A mapped grant is the only way a domain reaches a frame it does not own:
`frame_access` is that rule.

v1 entry (xen/include/public/grant_table.h), 8 bytes, 512 per 4 KiB frame:

     15 ........ 5   4        3        2         1..0
    | flags: ...   | writing | reading | readonly | type (invalid, permit_access,
    |              |         |         |          |       accept_transfer, transitive)
    | domid_t domid  (the domain allowed to use it) | uint32 frame (the granted frame) |

Entries 0..7 are reserved (0 = console ring, 1 = xenstore ring), so guests'
drivers allocate from 8 upwards (GNTTAB_NR_RESERVED_ENTRIES).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vmlab.hardware.memory import PAGE_SIZE, PageType
from vmlab.hypervisor import constants as C

if TYPE_CHECKING:
    from vmlab.hypervisor.domain import Domain
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = [
    "GrantTable", "GrantTables", "MapTrack", "frame_access", "do_grant_table_op", "mix_stamp",
    "GTF_invalid", "GTF_permit_access", "GTF_accept_transfer", "GTF_transitive", "GTF_type_mask",
    "GTF_readonly", "GTF_reading", "GTF_writing",
    "GNTTABOP_map_grant_ref", "GNTTABOP_unmap_grant_ref", "GNTTABOP_setup_table", "GNTTABOP_transfer",
    "GNTTABOP_copy", "GNTTABOP_query_size",
    "GNTMAP_device_map", "GNTMAP_host_map", "GNTMAP_readonly",
    "GNTCOPY_source_gref", "GNTCOPY_dest_gref",
    "GNTST_okay", "GNTST_general_error", "GNTST_bad_domain", "GNTST_bad_gntref", "GNTST_bad_handle",
    "GNTST_permission_denied", "GNTST_bad_page", "GNTST_bad_copy_arg",
    "GNTTAB_NR_RESERVED_ENTRIES", "GNTTAB_RESERVED_CONSOLE", "GNTTAB_RESERVED_XENSTORE",
    "GRANT_ENTRY_V1_BYTES", "ENTRIES_PER_GRANT_FRAME", "MAX_GRANT_FRAMES", "INITIAL_NR_GRANT_FRAMES",
]

# --- xen/include/public/grant_table.h ------------------------------------------
GTF_invalid = 0
GTF_permit_access = 1
GTF_accept_transfer = 2
GTF_transitive = 3
GTF_type_mask = 3
GTF_readonly = 1 << 2   # _GTF_readonly = 2
GTF_reading = 1 << 3    # _GTF_reading = 3: Xen sets it while the frame is mapped/copied for reading
GTF_writing = 1 << 4    # _GTF_writing = 4: ... for writing

GNTTABOP_map_grant_ref = 0
GNTTABOP_unmap_grant_ref = 1
GNTTABOP_setup_table = 2
GNTTABOP_dump_table = 3
GNTTABOP_transfer = 4
GNTTABOP_copy = 5
GNTTABOP_query_size = 6

GNTMAP_device_map = 1 << 0
GNTMAP_host_map = 1 << 1
GNTMAP_readonly = 1 << 2

GNTCOPY_source_gref = 1 << 0
GNTCOPY_dest_gref = 1 << 1

GNTST_okay = 0
GNTST_general_error = -1
GNTST_bad_domain = -2
GNTST_bad_gntref = -3
GNTST_bad_handle = -4
GNTST_bad_virt_addr = -5
GNTST_bad_dev_addr = -6
GNTST_no_device_space = -7
GNTST_permission_denied = -8
GNTST_bad_page = -9
GNTST_bad_copy_arg = -10

GNTTAB_NR_RESERVED_ENTRIES = 8
GNTTAB_RESERVED_CONSOLE = 0
GNTTAB_RESERVED_XENSTORE = 1

GRANT_ENTRY_V1_BYTES = 8
ENTRIES_PER_GRANT_FRAME = PAGE_SIZE // GRANT_ENTRY_V1_BYTES  # 512
# Default max grant frames per domain: 64 (REFERENCE.md §7; xl's max_grant_frames;
# Xen 3.x builds used 32). A guest grows its table with GNTTABOP_setup_table.
MAX_GRANT_FRAMES = 64
# Frames a table starts with. Xen 3.x's INITIAL_NR_GRANT_FRAMES (recalled, not
# checked in a primary copy: treat as illustrative).
INITIAL_NR_GRANT_FRAMES = 4

_MASK64 = (1 << 64) - 1
_GRANTABLE_RW = (int(PageType.NONE), int(PageType.WRITABLE))


def mix_stamp(*parts: int) -> int:
    """A deterministic 64-bit stamp for content derived from other content (splitmix64).

    Memory stamps identify a frame's bytes; a partial copy makes *new* bytes, so
    they get a new stamp that still depends only on what was copied.
    """
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x or 1  # 0 means "zero page"


class GrantTable:
    """One domain's v1 grant table: the shared entries plus Xen's active (pin) state.

    The `grant_*` / `end_foreign_access` methods are what the *guest* does by
    writing its own entries (Linux drivers/xen/grant-table.c), no hypercall.
    """

    __slots__ = ("domid", "nr_frames", "max_frames", "flags", "domid_of", "frame", "pin_read", "pin_write",
                 "_free", "_is_free")

    def __init__(self, domid: int, *, max_frames: int = MAX_GRANT_FRAMES,
                 nr_frames: int = INITIAL_NR_GRANT_FRAMES) -> None:
        self.domid = domid
        self.max_frames = max_frames
        self.nr_frames = 0
        self.flags: list[int] = []
        self.domid_of: list[int] = []
        self.frame: list[int] = []
        self.pin_read: list[int] = []   # Xen's active entry: live read-only mappings / copies
        self.pin_write: list[int] = []  # ... writable ones
        self._free: list[int] = []
        self._is_free: list[bool] = []
        self.grow(min(nr_frames, max_frames))

    @property
    def nr_entries(self) -> int:
        return self.nr_frames * ENTRIES_PER_GRANT_FRAME

    def grow(self, nr_frames: int) -> bool:
        """Extend the table to nr_frames (GNTTABOP_setup_table's effect). False if above the limit."""
        if nr_frames > self.max_frames:
            return False
        extra = (nr_frames - self.nr_frames) * ENTRIES_PER_GRANT_FRAME
        if extra > 0:
            start = self.nr_entries
            for lst in (self.flags, self.domid_of, self.frame, self.pin_read, self.pin_write):
                lst.extend([0] * extra)
            self._is_free.extend([False] * extra)
            # Linux's free list hands out the lowest free refs first; keep it as a stack, lowest on top.
            new = list(range(start + extra - 1, max(start, GNTTAB_NR_RESERVED_ENTRIES) - 1, -1))
            self._free[:0] = new
            for r in new:
                self._is_free[r] = True
            self.nr_frames = nr_frames
        return True

    # --- the guest's side -------------------------------------------------------
    def grant_foreign_access(self, domid: int, frame: int, *, readonly: bool = False) -> int:
        """gnttab_grant_foreign_access: claim a free ref and let `domid` use `frame`. -ENOSPC if full."""
        if not self._free:
            if not self.grow(min(self.max_frames, max(self.nr_frames * 2, 1))) or not self._free:
                return -28  # -ENOSPC, as Linux's get_free_entries reports
        ref = self._free.pop()
        self._is_free[ref] = False
        self.domid_of[ref] = int(domid)
        self.frame[ref] = int(frame)
        self.flags[ref] = GTF_permit_access | (GTF_readonly if readonly else 0)
        return ref

    def grant_ref(self, ref: int, domid: int, frame: int, *, readonly: bool = False) -> None:
        """Write entry `ref` directly (e.g. a reserved entry). The guest can write anything here."""
        if self._is_free[ref]:
            self._free.remove(ref)
            self._is_free[ref] = False
        self.domid_of[ref] = int(domid)
        self.frame[ref] = int(frame)
        self.flags[ref] = GTF_permit_access | (GTF_readonly if readonly else 0)

    def in_use(self, ref: int) -> bool:
        return bool(self.flags[ref] & (GTF_reading | GTF_writing))

    def end_foreign_access(self, ref: int) -> bool:
        """gnttab_end_foreign_access_ref: revoke the entry unless Xen has it in use.

        Returns False (and changes nothing) when GTF_reading/GTF_writing is set: a
        grant that is mapped cannot be revoked; the grantee must unmap first.
        """
        if not 0 <= ref < self.nr_entries or self.in_use(ref):
            return False
        self.flags[ref] = GTF_invalid
        if ref >= GNTTAB_NR_RESERVED_ENTRIES and not self._is_free[ref]:
            self._free.append(ref)
            self._is_free[ref] = True
        return True

    def live_refs(self) -> list[int]:
        return [r for r in range(self.nr_entries) if self.flags[r] & GTF_type_mask]


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
        mem = self.hv.memory
        t = self.tables.get(granter)
        if t is not None and ref < t.nr_entries:
            if readonly:
                t.pin_read[ref] -= 1
            else:
                t.pin_write[ref] -= 1
            f = t.flags[ref]
            if t.pin_write[ref] == 0:
                f &= ~GTF_writing
            if t.pin_write[ref] == 0 and t.pin_read[ref] == 0:
                f &= ~GTF_reading
            t.flags[ref] = f
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
            mfns = np.fromiter((m for m, _ in pins), dtype=np.int64, count=len(pins))
            np.add.at(mem.tot_count, mfns, 1)
            rw = mfns[np.fromiter((w for _, w in pins), dtype=bool, count=len(pins))]
            if rw.size:
                np.add.at(mem.type_count, rw, 1)

    def _unpin(self, unpins: list) -> None:
        # Only frames still owned by the granter carry the counts (a dead granter's frames were freed).
        mem = self.hv.memory
        for mfn, granter, writable in unpins:
            if mem.owner.item(mfn) == granter:
                if mem.tot_count.item(mfn) > 0:
                    mem.tot_count[mfn] -= 1
                if writable and mem.type_count.item(mfn) > 0:
                    mem.type_count[mfn] -= 1

    def map_many(self, caller: int, ops) -> tuple[list[int], list[int], list[int]]:
        status, handles, mfns, pins = [], [], [], []
        for op in ops:
            st, h, mfn = self.map_one(caller, op.get("ref", -1), op.get("dom", C.DOMID_INVALID), op.get("flags", 0), pins)
            status.append(st)
            handles.append(h)
            mfns.append(mfn)
        self._pin(pins)
        return status, handles, mfns

    def unmap_many(self, caller: int, handles) -> list[int]:
        unpins: list = []
        logging = self._logging
        status = [self.unmap_one(caller, h, unpins, logging) for h in handles]
        if len(unpins) > 4:
            mem = self.hv.memory
            m = np.fromiter((u[0] for u in unpins), dtype=np.int64, count=len(unpins))
            g = np.fromiter((u[1] for u in unpins), dtype=np.int64, count=len(unpins))
            w = np.fromiter((u[2] for u in unpins), dtype=bool, count=len(unpins))
            keep = mem.owner[m] == g
            np.subtract.at(mem.tot_count, m[keep], 1)
            np.subtract.at(mem.type_count, m[keep & w], 1)
        else:
            self._unpin(unpins)
        return status

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


def frame_access(hv: "Hypervisor", domid: int, mfn: int, *, write: bool = False) -> int:
    """0 if domain `domid` may touch machine frame `mfn`, else -EPERM (see GrantTables.frame_access)."""
    from vmlab.io.system import io_system
    return io_system(hv).grants.frame_access(domid, mfn, write=write)


def do_grant_table_op(hv: "Hypervisor", caller: "Domain", cmd: int, ops=None, count: int | None = None,
                      out: dict | None = None) -> int:
    """grant_table_op(cmd, uop, count): each op's status (and handle, frames) goes into `out` lists.

    The hypercall returns 0 when it processed the ops (each op has its own GNTST_*
    status), -EINVAL for a bad count, -EFAULT for an unreadable op list, -ENOSYS
    for an unknown command.
    """
    io = hv.__dict__.get("io_state")
    if io is None:
        from vmlab.io.system import io_system
        io = io_system(hv)
    g = io.grants
    out = out if out is not None else {}
    if ops is None:
        ops = []
    if isinstance(ops, dict):
        ops = [ops]
    if not isinstance(ops, (list, tuple)) or not all(isinstance(op, dict) for op in ops):
        return C.EFAULT  # Xen could not copy the op array from guest memory
    count = len(ops) if count is None else count
    if count < 0 or count > len(ops):
        return C.EINVAL
    me = caller.domid
    if cmd == GNTTABOP_map_grant_ref:
        ops = ops[:count]
        status, handles, mfns = g.map_many(me, ops)
        out["status"], out["handle"], out["mfn"] = status, handles, mfns
        out["dev_bus_addr"] = [m << 12 if st == GNTST_okay and op.get("flags", 0) & GNTMAP_device_map else 0
                               for st, m, op in zip(status, mfns, ops)]
        return 0
    if cmd == GNTTABOP_unmap_grant_ref:
        out["status"] = g.unmap_many(me, [op.get("handle", -1) for op in ops[:count]])
        return 0
    if cmd == GNTTABOP_copy:
        out["status"] = [g.copy_one(me, op) for op in ops[:count]]
        return 0
    if cmd in (GNTTABOP_setup_table, GNTTABOP_query_size):
        status, frames = [], []
        for op in ops[:count]:
            dom = op.get("dom", C.DOMID_SELF)
            dom = me if dom == C.DOMID_SELF else dom
            if dom != me and not caller.privileged:
                status.append(GNTST_permission_denied)
                continue
            if dom not in hv.domains:
                status.append(GNTST_bad_domain)
                continue
            t = g.table(dom)
            if cmd == GNTTABOP_setup_table:
                ok = t.grow(max(t.nr_frames, op.get("nr_frames", 0)))
                status.append(GNTST_okay if ok else GNTST_general_error)
                frames.append(t.nr_frames)
            else:
                status.append(GNTST_okay)
                frames.append((t.nr_frames, t.max_frames))
        out["status"], out["nr_frames"] = status, frames
        return 0
    if cmd == GNTTABOP_transfer:
        # Page flipping (Xen 3 netback's old RX path) is not modelled; netback copies.
        out["status"] = [GNTST_general_error] * count
        return 0
    return C.ENOSYS
