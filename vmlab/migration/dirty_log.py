"""Log-dirty mode: the hypervisor remembers which pages a guest wrote.

Xen keeps one bit per guest page while log-dirty is on; the save/migrate tool
reads it with the shadow_op domctl (xen/include/public/domctl.h, verified):

    XEN_DOMCTL_shadow_op = 10
      XEN_DOMCTL_SHADOW_OP_OFF              0   leave log-dirty mode
      XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY  2   start logging, bitmap all clear
      XEN_DOMCTL_SHADOW_OP_CLEAN           11   read the bitmap and clear it
      XEN_DOMCTL_SHADOW_OP_PEEK            12   read the bitmap, leave it alone

CLEAN once per round gives "pages dirtied since the last round"; Xen 3's PEEK
during a round gives "pages dirtied again already", which it skips (Clark et
al.'s writable-working-set trick). KVM's equivalent is KVM_GET_DIRTY_LOG, which
QEMU calls at every bitmap sync.

The bitmap lives on the Domain as `dirty_bitmap` (np.bool_ per pfn) because
`Hypervisor.guest_write` sets bits there whenever the attribute exists.
`install_shadow_op(hv)` adds the sub-op to that hypervisor's domctl so the
toolstack drives it through the hypercall gate, as libxc does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypercalls import HypercallEntry
from vmlab.migration.xen3_order import ColumnChunk

if TYPE_CHECKING:
    from vmlab.hypervisor.domain import Domain
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["DirtyLog", "SHADOW_OP", "install_shadow_op", "enable_log_dirty", "disable_log_dirty"]

XEN_DOMCTL_shadow_op = C.XEN_DOMCTL["shadow_op"]  # 10
SHADOW_OP = {"OFF": 0, "ENABLE_LOGDIRTY": 2, "CLEAN": 11, "PEEK": 12}


def _runs(blocks: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of consecutive block numbers (sorted input)."""
    bounds = [0, *(np.flatnonzero(np.diff(blocks) != 1) + 1).tolist(), int(blocks.size)]
    return [(int(blocks[a]), int(blocks[b - 1]) + 1) for a, b in zip(bounds[:-1], bounds[1:])]


class DirtyLog:
    """A log-dirty bitmap over `n_pages` pfns with Xen's read-and-clear semantics.

    `bitmap` may be shared with a Domain (`dom.dirty_bitmap`) so that the
    hypervisor's own guest writes set it.
    """

    BLOCK_SHIFT = 12  # summary bit per 4096 pages (16 MiB), so CLEAN scans only dirty blocks

    def __init__(self, n_pages: int, bitmap: np.ndarray | None = None) -> None:
        n_pages = int(n_pages)
        if bitmap is None:
            # Our own bitmap: every store comes through mark(), so a per-block summary
            # stays exact and CLEAN need not scan clean gigabytes.
            nblocks = -(-n_pages >> self.BLOCK_SHIFT) if n_pages else 0
            self._padded = np.zeros(nblocks << self.BLOCK_SHIFT, dtype=np.bool_)
            self.bitmap = self._padded[:n_pages]
            self._blocks: np.ndarray | None = np.zeros(nblocks, dtype=np.bool_)
        else:  # shared with a Domain: the hypervisor sets bits behind our back, scan it all
            self.bitmap = bitmap
            self._blocks = None
        self._scratch = np.zeros(self.bitmap.size, dtype=np.bool_)

    @property
    def n_pages(self) -> int:
        return int(self.bitmap.size)

    def mark(self, pfns: np.ndarray) -> None:
        mask = getattr(pfns, "dense_mask", None)   # dirtying.DenseWrites: the same bits as one OR
        if mask is not None and len(pfns):
            lo = pfns.dense_lo
            np.logical_or(self.bitmap[lo:lo + mask.size], mask, out=self.bitmap[lo:lo + mask.size])
            if self._blocks is not None:   # sorted: the first and last pfn bound the span
                self._blocks[int(pfns[0]) >> self.BLOCK_SHIFT:(int(pfns[-1]) >> self.BLOCK_SHIFT) + 1] = True
            return
        self.bitmap[pfns] = True
        if self._blocks is not None and len(pfns):
            if len(pfns) > 4096:  # mark the span's blocks: a safe over-approximation, two cheap passes
                self._blocks[int(pfns.min()) >> self.BLOCK_SHIFT:(int(pfns.max()) >> self.BLOCK_SHIFT) + 1] = True
            else:
                self._blocks[pfns >> self.BLOCK_SHIFT] = True

    def peek(self, pfns: np.ndarray) -> np.ndarray:
        """Which of `pfns` are dirty now (SHADOW_OP_PEEK restricted to a batch); for a
        ColumnChunk, its (rows, 64) view of the bitmap."""
        if isinstance(pfns, ColumnChunk):
            return pfns.view(self.bitmap)
        return self.bitmap[pfns]

    def dirty_count(self) -> int:
        return int(np.count_nonzero(self.bitmap))

    def clean(self) -> np.ndarray:
        """SHADOW_OP_CLEAN: the dirty pfns (sorted), and the bitmap cleared."""
        if self._blocks is not None:
            blocks = np.flatnonzero(self._blocks)
            if blocks.size == 0:
                return blocks
            b0, b1 = int(blocks[0]), int(blocks[-1]) + 1
            if b1 - b0 > 2 * blocks.size:   # scattered dirty blocks: scan those alone
                runs = _runs(blocks)
                if len(runs) < 8:   # a few runs of blocks (a working set and a hot set): one slice each
                    return np.concatenate([self._clean_span(a, b) for a, b in runs])
                rows = self._padded.reshape(-1, 1 << self.BLOCK_SHIFT)
                flat = np.flatnonzero(rows[blocks])
                dirty = (blocks[flat >> self.BLOCK_SHIFT] << self.BLOCK_SHIFT) + (flat & ((1 << self.BLOCK_SHIFT) - 1))
                rows[blocks] = False
                self._blocks[blocks] = False
                return dirty.astype(np.int64)
            return self._clean_span(b0, b1)
        dirty = np.flatnonzero(self.bitmap)
        self.bitmap[dirty] = False
        return dirty

    def _clean_span(self, b0: int, b1: int) -> np.ndarray:
        """Clean blocks [b0, b1) as one slice (sorted output), cleared with one fill."""
        span = self._padded[b0 << self.BLOCK_SHIFT:b1 << self.BLOCK_SHIFT]
        dirty = np.flatnonzero(span)
        if b0:
            dirty += b0 << self.BLOCK_SHIFT
        span[:] = False
        self._blocks[b0:b1] = False
        return dirty

    def clean_merge(self, unsent: np.ndarray) -> tuple[np.ndarray, int]:
        """Clean, and OR in `unsent` (pages still pending in the sender's bitmap).

        Returns (merged sorted pfns, pages newly dirty = not already pending):
        QEMU's migration_bitmap_sync counts only newly set bits
        (num_dirty_pages_period).
        """
        if unsent.size and self._blocks is not None:
            # our own bitmap: OR the pending pages in and read both at once (|dirty | unsent| - |unsent|
            # is the count of newly dirty pages)
            self.mark(unsent)
            merged = self.clean()
            return merged, int(merged.size - unsent.size)
        dirty = self.clean()
        if unsent.size == 0:
            return dirty, int(dirty.size)
        s = self._scratch
        s[dirty] = True
        s[unsent] = True
        merged = np.flatnonzero(s)
        s[merged] = False
        return merged, int(merged.size - unsent.size)


# --- the domctl sub-op, for live domains -------------------------------------------

def _shadow_op(hv: "Hypervisor", dom: "Domain", op: int, out: dict) -> int:
    if op == SHADOW_OP["ENABLE_LOGDIRTY"]:
        if getattr(dom, "dirty_bitmap", None) is not None:
            return C.EINVAL  # already in log-dirty mode (Xen: -EINVAL from paging_log_dirty_enable)
        dom.dirty_bitmap = np.zeros(dom.p2m.size, dtype=np.bool_)
        return 0
    bitmap = getattr(dom, "dirty_bitmap", None)
    if op == SHADOW_OP["OFF"]:
        if bitmap is not None:
            del dom.dirty_bitmap
        return 0
    if bitmap is None:
        return C.EINVAL  # CLEAN/PEEK outside log-dirty mode
    if op == SHADOW_OP["PEEK"]:
        out["dirty"] = np.flatnonzero(bitmap)
        out["dirty_count"] = int(out["dirty"].size)
        return 0
    if op == SHADOW_OP["CLEAN"]:
        dirty = np.flatnonzero(bitmap)
        bitmap[dirty] = False
        out["dirty"] = dirty
        out["dirty_count"] = int(dirty.size)
        return 0
    return C.EINVAL


def install_shadow_op(hv: "Hypervisor") -> None:
    """Teach this hypervisor's domctl the log-dirty shadow_op (idempotent).

    The base domctl answers -ENOSYS for shadow_op; this wraps it so that
    `hv.hypercall(0, "domctl", 10, domid, op, out)` works and every other domctl
    is passed through unchanged.
    """
    entry = hv.hypercalls["domctl"]
    if getattr(entry.handler, "_vmlab_shadow_op", False):
        return
    inner = entry.handler

    def domctl(hv_, caller, cmd, domid=C.DOMID_INVALID, arg=None, out=None):
        if cmd != XEN_DOMCTL_shadow_op:
            return inner(hv_, caller, cmd, domid, arg, out)
        dom = hv_.domains.get(domid)
        if dom is None:
            return C.ESRCH
        if dom is caller:  # Xen refuses log-dirty on oneself
            return C.EINVAL
        return _shadow_op(hv_, dom, int(arg) if arg is not None else -1, out if out is not None else {})

    domctl._vmlab_shadow_op = True  # type: ignore[attr-defined]
    hv.register(HypercallEntry(entry.name, entry.number, domctl, entry.privileged))


def _call(hv: "Hypervisor", domid: int, op: str) -> tuple[int, dict]:
    install_shadow_op(hv)
    out: dict = {}
    rc = hv.hypercall(0, "domctl", XEN_DOMCTL_shadow_op, domid, SHADOW_OP[op], out)
    return rc, out


class DomainDirtyLog(DirtyLog):
    """A live domain's log: CLEAN goes through the hypercall gate (and the trace), as libxc's does."""

    def __init__(self, hv: "Hypervisor", domid: int) -> None:
        dom = hv.domains[domid]
        super().__init__(dom.p2m.size, bitmap=dom.dirty_bitmap)
        self.hv, self.domid = hv, domid

    def clean(self) -> np.ndarray:
        rc, out = _call(self.hv, self.domid, "CLEAN")
        if rc < 0:
            from vmlab.errors import HypercallError
            raise HypercallError("domctl(shadow_op CLEAN)", rc, f"domain {self.domid}")
        return out["dirty"]


def enable_log_dirty(hv: "Hypervisor", domid: int) -> DirtyLog:
    """Turn log-dirty on for a domain (as dom0); returns a DirtyLog sharing its bitmap."""
    from vmlab.errors import HypercallError
    rc, _ = _call(hv, domid, "ENABLE_LOGDIRTY")
    if rc < 0:
        raise HypercallError("domctl(shadow_op ENABLE_LOGDIRTY)", rc, f"domain {domid}")
    return DomainDirtyLog(hv, domid)


def disable_log_dirty(hv: "Hypervisor", domid: int) -> None:
    if domid in hv.domains:
        _call(hv, domid, "OFF")
