"""Machine memory: every frame, who owns it, and what it is used as.

One numpy array per field, indexed by machine frame number (mfn), so a 64 GiB
host (16.7 million frames) costs a few hundred MB at most and every accounting
question is one vectorized expression. The fields mirror Xen's `struct page_info`:

    owner       domid that owns the frame, DOMID_XEN for the hypervisor, FREE if free
    page_type   PGT_* use of the frame (none, l1..l4, seg_desc, shared, writable)
    type_count  references to the frame *as its current type*
    tot_count   all references to the frame
    content     a 64-bit stamp of the frame's bytes (0 = a zero page); migration and
                save/restore compare stamps to prove a page arrived intact

Frames that hold page tables also carry their 512 eight-byte entries in `words`
(allocated on first use), so a page walk really reads memory.

Each field is kept as runs of equal values (start mfn, value) until something
reads it as an array: a fresh host, or one loaded from a state file, answers
accounting questions (`runs`, `counts_by_owner`, `free_frames`, `save`) from the
runs, and a read-only CLI call never expands 16.7 M-frame arrays.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from vmlab.errors import CapacityError, ConfigError

__all__ = ["MachineMemory", "all_distinct", "PageType", "FREE", "PAGE_SIZE", "PAGE_SHIFT", "frames_from_mib", "mib_from_frames"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT  # 4 KiB, x86
FREE = -1  # owner value of a free frame (Xen: page on the heap's free list)
ENTRIES_PER_TABLE = 512  # 4096 / 8-byte PTEs


def all_distinct(index: np.ndarray, size: int) -> bool:
    """True if no value repeats in `index` (all in [0, size)); O(n), no sort."""
    seen = np.zeros(size, dtype=bool)
    seen[index] = True
    return int(np.count_nonzero(seen)) == index.size


class PageType(IntEnum):
    """Xen's mutually exclusive page types (xen/include/asm-x86/mm.h, PGT_*)."""

    NONE = 0
    L1 = 1
    L2 = 2
    L3 = 3
    L4 = 4
    SEG_DESC = 5
    SHARED = 6
    WRITABLE = 7


def frames_from_mib(mib: int | float) -> int:
    return int(round(mib * (1 << 20))) >> PAGE_SHIFT


def mib_from_frames(frames: int) -> int:
    return (int(frames) << PAGE_SHIFT) >> 20


_FIELDS: dict[str, tuple[type, int]] = {
    "owner": (np.int32, FREE), "page_type": (np.uint8, 0), "type_count": (np.int32, 0),
    "tot_count": (np.int32, 0), "content": (np.uint64, 0),
}


def _lazy_field(name: str) -> property:
    """A frame array kept as runs until first read (then expanded once, with np.repeat)."""
    def get(self) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None:
            starts, vals = self._runs_of.pop(name)
            lengths = np.diff(np.append(starts, self.total_frames))
            arr = self._arrays[name] = np.repeat(vals.astype(_FIELDS[name][0]), lengths)
        return arr

    def put(self, value: np.ndarray) -> None:
        self._runs_of.pop(name, None)
        self._arrays[name] = value
    return property(get, put, doc=f"`{name}` of every machine frame, indexed by mfn")


class MachineMemory:
    """The host's machine frames and their bookkeeping."""

    owner = _lazy_field("owner")
    page_type = _lazy_field("page_type")
    type_count = _lazy_field("type_count")
    tot_count = _lazy_field("tot_count")
    content = _lazy_field("content")

    def __init__(self, total_frames: int) -> None:
        if total_frames <= 0:
            raise ConfigError(f"total_frames={total_frames} must be positive; give the host some memory")
        self.total_frames = int(total_frames)
        self._arrays: dict[str, np.ndarray] = {}
        # fields not yet expanded: name -> (run start mfns, run values)
        self._runs_of: dict[str, tuple[np.ndarray, np.ndarray]] = {
            name: (np.zeros(1, np.int64), np.array([fill], dtype=dtype)) for name, (dtype, fill) in _FIELDS.items()}
        self.words: dict[int, np.ndarray] = {}
        self._free = self.total_frames
        self._hint = 0  # every frame below this mfn is in use: free-frame searches start here
        # Owners change only in allocate/release; `version` counts those changes so
        # runs() and counts_by_owner() are computed once per change, not per question.
        self.version = 0
        self._runs_cache: tuple[int, tuple] | None = None

    # --- accounting -------------------------------------------------------
    @property
    def free_frames(self) -> int:
        return self._free

    def count_owned(self, owner: int) -> int:
        return self.counts_by_owner().get(owner, 0)

    def counts_by_owner(self) -> dict[int, int]:
        """{owner: frames}, FREE included; the values always sum to total_frames."""
        _, lengths, owners = self.runs()
        counts: dict[int, int] = {}
        for o, n in zip(owners.tolist(), lengths.tolist()):
            counts[o] = counts.get(o, 0) + n
        return counts

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maximal runs of frames with one owner: (start_mfn, length, owner) arrays (read-only)."""
        if self._runs_cache is not None and self._runs_cache[0] == self.version:
            return self._runs_cache[1]
        if "owner" in self._runs_of:  # not expanded: the saved runs are already maximal
            starts, vals = self._runs_of["owner"]
            starts = starts.astype(np.int64)
            result = (starts.copy(), np.diff(np.append(starts, self.total_frames)), vals.astype(np.int32))
        else:
            change = np.flatnonzero(self.owner[1:] != self.owner[:-1]) + 1
            starts = np.concatenate(([0], change))
            ends = np.concatenate((change, [self.total_frames]))
            result = (starts, ends - starts, self.owner[starts].copy())
        for a in result:
            a.flags.writeable = False
        self._runs_cache = (self.version, result)
        return result

    # --- allocation -------------------------------------------------------
    def allocate(self, owner: int, count: int, *, what: str = "frames") -> np.ndarray:
        """Give `count` free frames to `owner`, lowest mfns first; returns their mfns.

        Raises CapacityError (and changes nothing) when fewer are free.
        """
        count = int(count)
        if count < 0:
            raise ConfigError(f"count={count} frames is negative; ask for zero or more")
        if count > self._free:
            raise CapacityError(
                f"{what}: {count} frames ({mib_from_frames(count)} MiB) requested but only "
                f"{self._free} ({mib_from_frames(self._free)} MiB) are free; ask for less or free a guest"
            )
        if count == 0:
            return np.empty(0, dtype=np.int64)
        mfns = self._lowest_free(count)
        self._hint = int(mfns[-1]) + 1
        self.owner[mfns] = owner
        self.page_type[mfns] = PageType.NONE  # typed (l1..l4, writable) on first use, as in Xen
        self.type_count[mfns] = 0
        self.tot_count[mfns] = 0
        self.content[mfns] = 0  # Xen scrubs pages before handing them out
        self._free -= count
        self.version += 1
        return mfns.astype(np.int64)

    def _lowest_free(self, count: int, chunk: int = 1 << 20) -> np.ndarray:
        """The `count` lowest free mfns, scanning from the hint in chunks (not the whole array)."""
        found, need, start = [], count, self._hint
        while need > 0 and start < self.total_frames:
            idx = np.flatnonzero(self.owner[start:start + chunk] == FREE)[:need] + start
            found.append(idx)
            need -= idx.size
            start += chunk
        return np.concatenate(found)

    def release(self, mfns: np.ndarray, *, owner: int) -> None:
        """Return frames to the free pool; every one must belong to `owner`."""
        mfns = np.asarray(mfns, dtype=np.int64)
        if mfns.size == 0:
            return
        if np.any(mfns < 0) or np.any(mfns >= self.total_frames):
            bad = int(mfns[(mfns < 0) | (mfns >= self.total_frames)][0])
            raise ConfigError(f"mfn {bad} is outside machine memory [0, {self.total_frames}); pass frames of this host")
        wrong = mfns[self.owner[mfns] != owner]
        if wrong.size:
            raise ConfigError(
                f"mfn {int(wrong[0])} belongs to owner {int(self.owner[wrong[0]])}, not {owner}; only an owner releases its frames"
            )
        if not all_distinct(mfns, self.total_frames):
            raise ConfigError("the same mfn was released twice in one call; pass each frame once")
        self.owner[mfns] = FREE
        self.page_type[mfns] = PageType.NONE
        self.type_count[mfns] = 0
        self.tot_count[mfns] = 0
        self.content[mfns] = 0
        if self.words:
            for m in np.intersect1d(mfns, np.fromiter(self.words, dtype=np.int64)).tolist():
                del self.words[m]
        self._free += int(mfns.size)
        self._hint = min(self._hint, int(mfns.min()))
        self.version += 1

    def table(self, mfn: int) -> np.ndarray:
        """The 512 64-bit words of a frame used as a page table (zeroed on first use)."""
        t = self.words.get(mfn)
        if t is None:
            t = self.words[mfn] = np.zeros(ENTRIES_PER_TABLE, dtype=np.uint64)
        return t

    # --- state ------------------------------------------------------------
    def check(self) -> None:
        """Assert the accounting invariant: free count matches the owner array."""
        self._runs_cache = None  # recheck from the arrays themselves
        actual = int(np.count_nonzero(self.owner == FREE))
        assert actual == self._free, f"free-frame count {self._free} != {actual}"
        assert not np.any(self.owner[: self._hint] == FREE), "a free frame lies below the allocation hint"

    def save(self) -> dict[str, np.ndarray]:
        """A compact copy: every field as runs of equal values.

        Most frames are free or zero, so a 64 GiB host saves in kilobytes, which
        keeps every CLI call (load state, run a verb, save state) fast.
        """
        state = {"total_frames": np.array([self.total_frames], dtype=np.int64)}
        for name in _FIELDS:
            if name in self._runs_of:  # never expanded: its runs are what we would compute
                starts, vals = self._runs_of[name]
            else:
                arr = self._arrays[name]
                starts = np.concatenate(([0], np.flatnonzero(arr[1:] != arr[:-1]) + 1))
                vals = arr[starts]
            state[f"{name}.start"], state[f"{name}.val"] = starts.astype(np.int64), vals
        words_mfns = np.array(sorted(self.words), dtype=np.int64)
        state["words_mfns"] = words_mfns
        state["words"] = (np.stack([self.words[m] for m in words_mfns.tolist()])
                          if words_mfns.size else np.zeros((0, ENTRIES_PER_TABLE), np.uint64))
        return state

    @classmethod
    def restore(cls, state: dict[str, np.ndarray]) -> "MachineMemory":
        """The inverse of `save`: fields stay as runs until first read."""
        mem = cls(int(state["total_frames"][0]))
        for name, (dtype, _) in _FIELDS.items():
            mem._runs_of[name] = (np.asarray(state[f"{name}.start"], dtype=np.int64),
                                  np.asarray(state[f"{name}.val"], dtype=dtype))
        mem.words = {int(m): np.array(w, dtype=np.uint64) for m, w in zip(state["words_mfns"], state["words"])}
        mem._free = mem.counts_by_owner().get(FREE, 0)
        mem._hint = 0
        mem.version, mem._runs_cache = 0, None
        return mem
