"""Grant tables (v1): how a domain lets another domain reach one of its frames.

The granting domain writes an entry in its own grant table (shared with Xen, no
hypercall); the grantee asks Xen to map, unmap or copy through `grant_table_op`
(hypercall 20). Xen checks the entry, pins it (sets GTF_reading / GTF_writing)
while it is mapped, and remembers the mapping in the grantee's *maptrack* table.
A mapped grant is the only way a domain reaches a frame it does not own:
`GrantTables.frame_access` (grant_map.py) is that rule. This file is the table the
guest writes; grant_map.py is Xen's side (map, unmap, copy); grant_ops.py the hypercall.

v1 entry (xen/include/public/grant_table.h), 8 bytes, 512 per 4 KiB frame:

     15 ........ 5   4        3        2         1..0
    | flags: ...   | writing | reading | readonly | type (invalid, permit_access,
    |              |         |         |          |       accept_transfer, transitive)
    | domid_t domid  (the domain allowed to use it) | uint32 frame (the granted frame) |

Entries 0..7 are reserved (0 = console ring, 1 = xenstore ring), so guests'
drivers allocate from 8 upwards (GNTTAB_NR_RESERVED_ENTRIES).
"""

from __future__ import annotations

from vmlab.hardware.memory import PAGE_SIZE

__all__ = [
    "GrantTable", "mix_stamp",
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

    def end_foreign_access_many(self, refs: list[int]) -> int:
        """end_foreign_access for each ref in order; returns how many could not be revoked (still in use)."""
        flags, is_free, free, n = self.flags, self._is_free, self._free, len(self.flags)
        refused = 0
        for ref in refs:
            if not 0 <= ref < n or flags[ref] & (GTF_reading | GTF_writing):
                refused += 1
                continue
            flags[ref] = GTF_invalid
            if ref >= GNTTAB_NR_RESERVED_ENTRIES and not is_free[ref]:
                free.append(ref)
                is_free[ref] = True
        return refused
