"""The x86-64 MMU: the PTE bit layout and a 4-level page walk that reads real memory.

Page tables live *inside* machine frames (`MachineMemory.table(mfn)`), so a walk
reads one 8-byte entry per level from memory and every reference is counted:

    x86-64 PTE (Intel SDM vol. 3 §4.5, AMD APM vol. 2 §5.3):
     63  62..52  51 ........ 12 11..9  8  7  6  5  4   3   2  1  0
     NX  avail   frame number   avail  G  PS D  A  PCD PWT US RW P

    virtual address (48 bits, canonical: bits 63..48 copy bit 47):
     47..39 L4 index | 38..30 L3 index | 29..21 L2 index | 20..12 L1 index | 11..0 offset

A walk sets A in every entry it uses and D in the leaf on a write, as the
hardware does. A failed walk returns the #PF error code the CPU pushes:
bit 0 P (1 = protection violation, 0 = not present), bit 1 W/R (write),
bit 2 U/S (user mode), bit 3 RSVD (reserved bit set), bit 4 I/D (instruction fetch).
2 MiB pages (PS in an L2 entry) and 1 GiB pages (PS in an L3 entry) end the walk early.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.hardware.memory import MachineMemory

__all__ = [
    "PTE_P", "PTE_RW", "PTE_US", "PTE_PWT", "PTE_PCD", "PTE_A", "PTE_D", "PTE_PS", "PTE_G", "PTE_NX",
    "PTE_FRAME_MASK", "PFEC_PRESENT", "PFEC_WRITE", "PFEC_USER", "PFEC_RSVD", "PFEC_INSTR",
    "LEVELS", "make_pte", "pte_frame", "pte_flags", "va_indices", "is_canonical", "canonical",
    "WalkResult", "walk", "walk_many", "describe_pte", "level_page_shift",
]

PTE_P = 1 << 0
PTE_RW = 1 << 1
PTE_US = 1 << 2
PTE_PWT = 1 << 3
PTE_PCD = 1 << 4
PTE_A = 1 << 5
PTE_D = 1 << 6
PTE_PS = 1 << 7
PTE_G = 1 << 8
PTE_NX = 1 << 63
PTE_FRAME_MASK = ((1 << 52) - 1) & ~0xFFF   # bits 51..12
PTE_FLAGS_MASK = ~PTE_FRAME_MASK & ((1 << 64) - 1)

# #PF error code bits (Intel SDM vol. 3 §4.7)
PFEC_PRESENT = 1 << 0
PFEC_WRITE = 1 << 1
PFEC_USER = 1 << 2
PFEC_RSVD = 1 << 3
PFEC_INSTR = 1 << 4

LEVELS = 4
VA_BITS = 48


def level_page_shift(level: int) -> int:
    """Bits of address one entry at `level` covers: L1 12 (4 KiB), L2 21 (2 MiB), L3 30, L4 39."""
    return 12 + 9 * (level - 1)


def make_pte(frame: int, flags: int) -> int:
    """An entry pointing at `frame` (an mfn, or a gpfn in a guest's own table) with `flags`."""
    return ((int(frame) << 12) & PTE_FRAME_MASK) | (int(flags) & PTE_FLAGS_MASK)


def pte_frame(pte: int) -> int:
    return (int(pte) & PTE_FRAME_MASK) >> 12


def pte_flags(pte: int) -> int:
    return int(pte) & PTE_FLAGS_MASK


def is_canonical(va: int) -> bool:
    va = int(va)
    if va < 0 or va >= 1 << 64:
        return False
    top = va >> (VA_BITS - 1)
    return top == 0 or top == (1 << (64 - VA_BITS + 1)) - 1


def canonical(va: int) -> int:
    """Sign-extend bit 47 (a 48-bit address as a 64-bit canonical one)."""
    va = int(va) & ((1 << VA_BITS) - 1)
    return va | (((1 << 64) - 1) ^ ((1 << VA_BITS) - 1)) if va >> (VA_BITS - 1) else va


def va_indices(va: int) -> tuple[int, int, int, int]:
    """(L4, L3, L2, L1) table indices of a virtual address."""
    va = int(va)
    return ((va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511)


def describe_pte(pte: int) -> str:
    """'mfn 0x1a3 P RW US A D' — for tables, widgets and error messages."""
    pte = int(pte)
    names = [(PTE_P, "P"), (PTE_RW, "RW"), (PTE_US, "US"), (PTE_PWT, "PWT"), (PTE_PCD, "PCD"), (PTE_A, "A"),
             (PTE_D, "D"), (PTE_PS, "PS"), (PTE_G, "G"), (PTE_NX, "NX")]
    return f"frame {pte_frame(pte):#x} " + " ".join(n for b, n in names if pte & b)


@dataclass(frozen=True, kw_only=True, slots=True)
class WalkResult:
    """What one page walk found: the frame, or the fault, and what it cost."""

    frame: int = -1            # frame of the 4 KiB page holding va (-1 on a fault)
    page_shift: int = 12       # 12, 21 or 30: the size of the page that mapped va
    fault: int | None = None   # #PF error code, None when the walk succeeded
    fault_level: int = 0       # level whose entry stopped the walk (4..1), 0 on success
    refs: int = 0              # memory references the walk made
    flags: int = 0             # effective permissions: AND of RW/US, OR of NX along the path
    global_page: bool = False
    path: tuple[tuple[int, int], ...] = field(default=())  # (table frame, index) per level read

    @property
    def ok(self) -> bool:
        return self.fault is None


# Reserved bits in a present entry: bits 51..MAXPHYADDR are reserved; vmlab's
# machine has MAXPHYADDR = 52, so only PS in an L4 entry is reserved here.
def walk(memory: MachineMemory, root: int, va: int, *, write: bool = False, user: bool = True,
         fetch: bool = False, set_ad: bool = True, frame_of=None) -> WalkResult:
    """Walk the 4-level table rooted at frame `root` for `va`, as the hardware does.

    `frame_of` maps a table frame number found in an entry to the machine frame that
    holds it (identity for machine tables; a guest's p2m for its own tables read by
    the hypervisor). Returns a WalkResult; never raises for a guest-controlled value.
    """
    if not is_canonical(va):
        # the CPU raises #GP, not #PF, for a non-canonical address; vmlab reports it as
        # a reserved-bit fault at level 4 so callers have one failure path.
        return WalkResult(fault=PFEC_RSVD | (PFEC_WRITE if write else 0) | (PFEC_USER if user else 0), fault_level=4)
    idx = va_indices(va)
    table = int(root)
    refs = 0
    rw = us = True
    nx = False
    path = []
    access = (PFEC_WRITE if write else 0) | (PFEC_USER if user else 0) | (PFEC_INSTR if fetch else 0)
    touched = []
    for depth, level in enumerate((4, 3, 2, 1)):
        mfn = table if frame_of is None else frame_of(table)
        if mfn < 0 or mfn >= memory.total_frames:
            return WalkResult(fault=access | PFEC_RSVD, fault_level=level, refs=refs, path=tuple(path))
        words = memory.table(mfn)
        i = idx[depth]
        pte = int(words[i])
        refs += 1
        path.append((mfn, i))
        if not pte & PTE_P:
            return WalkResult(fault=access, fault_level=level, refs=refs, path=tuple(path))
        if level == 4 and pte & PTE_PS:
            return WalkResult(fault=access | PFEC_PRESENT | PFEC_RSVD, fault_level=level, refs=refs, path=tuple(path))
        rw &= bool(pte & PTE_RW)
        us &= bool(pte & PTE_US)
        nx |= bool(pte & PTE_NX)
        touched.append((words, i, pte))
        if level == 1 or pte & PTE_PS:
            break
        table = pte_frame(pte)
    # permissions are the AND (NX the OR) over every level, checked once the leaf is found
    if (write and not rw) or (user and not us) or (fetch and nx):
        return WalkResult(fault=access | PFEC_PRESENT, fault_level=level, refs=refs, path=tuple(path))
    if set_ad:
        for k, (words, i, pte) in enumerate(touched):
            new = pte | PTE_A | (PTE_D if write and k == len(touched) - 1 else 0)
            if new != pte:
                words[i] = np.uint64(new)
    shift = level_page_shift(level)
    base = pte_frame(pte) & ~((1 << (shift - 12)) - 1)
    frame = base + ((int(va) >> 12) & ((1 << (shift - 12)) - 1))
    flags = (PTE_RW if rw else 0) | (PTE_US if us else 0) | (PTE_NX if nx else 0)
    return WalkResult(frame=frame, page_shift=shift, refs=refs, flags=flags,
                      global_page=bool(pte & PTE_G), path=tuple(path))


def walk_many(memory: MachineMemory, root: int, vpns: np.ndarray, *, writes: np.ndarray | None = None,
              user: bool = True, frame_of: np.ndarray | None = None, set_ad: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """`walk` for many pages at once (4 KiB leaves; a PS entry is treated as a fault here).

    Returns (frame, fault, refs, table_frames): frame -1 and fault = #PF code where the walk
    fails (else fault -1), refs per page, and for each level the table frame numbers read
    (before `frame_of`) as (page indices, frames), so a nested model can charge the nested walks. A/D bits are set as
    `walk` would, on success only. `frame_of` maps frame numbers in entries to machine frames.
    """
    vpns = np.asarray(vpns, np.int64)
    n = vpns.size
    writes = np.zeros(n, bool) if writes is None else np.asarray(writes, bool)
    frame = np.full(n, -1, np.int64)
    fault = np.full(n, -1, np.int64)
    refs = np.zeros(n, np.int64)
    table = np.full(n, int(root), np.int64)
    alive = np.ones(n, bool)
    rw = np.ones(n, bool)
    us = np.ones(n, bool)
    reads = []          # per level: (alive index array, machine table frames, entry indices)
    tables_read = []
    access = np.where(writes, PFEC_WRITE, 0) | (PFEC_USER if user else 0)
    P, RWb, USb, PS = np.uint64(PTE_P), np.uint64(PTE_RW), np.uint64(PTE_US), np.uint64(PTE_PS)
    for depth in range(4):
        a = np.flatnonzero(alive)
        if a.size == 0:
            break
        t = table[a]
        tables_read.append((a, t))
        mfn, bad, idx, pte = _read_level(memory, t, vpns[a], depth, frame_of)
        refs[a] += 1
        fault[a[bad]] = access[a[bad]] | PFEC_RSVD
        present = ((pte & P) != 0) & ~bad
        notp = ~present & ~bad
        fault[a[notp]] = access[a[notp]]
        ps = present & ((pte & PS) != 0)
        fault[a[ps]] = access[a[ps]] | PFEC_PRESENT | PFEC_RSVD
        ok = present & ~ps
        alive[a[~ok]] = False
        rw[a[ok]] &= (pte[ok] & RWb) != 0
        us[a[ok]] &= (pte[ok] & USb) != 0
        reads.append((a[ok], mfn[ok], idx[ok]))
        nxt = ((pte[ok] & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
        if depth < 3:
            table[a[ok]] = nxt
        else:
            frame[a[ok]] = nxt
    done = alive
    perm = done & ((writes & ~rw) | (user & ~us))
    fault[perm] = access[perm] | PFEC_PRESENT
    frame[perm] = -1
    success = done & ~perm
    if set_ad:
        _set_accessed_dirty(memory, reads, success, writes)
    return frame, fault, refs, tables_read


def _read_level(memory: MachineMemory, t: np.ndarray, vpns: np.ndarray, depth: int, frame_of):
    """One level of many walks: (table mfns, bad-table mask, entry indices, entries read)."""
    mfn = t if frame_of is None else frame_of[np.clip(t, 0, frame_of.size - 1)]
    bad = (mfn < 0) | (mfn >= memory.total_frames)
    if frame_of is not None:
        bad |= (t < 0) | (t >= frame_of.size)
    idx = (vpns >> (9 * (3 - depth))) & 511
    pte = np.zeros(t.size, np.uint64)
    good = np.flatnonzero(~bad)
    if good.size:
        u, inv = np.unique(mfn[good], return_inverse=True)
        stack = np.stack([memory.table(int(m)) for m in u.tolist()])
        pte[good] = stack[inv, idx[good]]
    return mfn, bad, idx, pte


def _set_accessed_dirty(memory: MachineMemory, reads: list, success: np.ndarray, writes: np.ndarray) -> None:
    """Set A in every entry the successful walks used, and D in the leaf of a write, as `walk` does."""
    for depth, (a, mfn, idx) in enumerate(reads):
        sel = success[a]
        if not sel.any():
            continue
        bits = np.full(int(sel.sum()), PTE_A, np.uint64)
        if depth == 3:
            bits |= np.where(writes[a[sel]], np.uint64(PTE_D), np.uint64(0))
        m_sel, i_sel = mfn[sel], idx[sel]
        for m in np.unique(m_sel).tolist():
            k = m_sel == m
            words = memory.table(int(m))
            np.bitwise_or.at(words, i_sel[k], bits[k])
