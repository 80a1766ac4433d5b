"""The order Xen 3's xc_domain_save scans pfns in: `permute()`, a pseudo-random bijection.

tools/libxc/xc_domain_save.c (Xen 3.1): "we scan pages in a pseudo random order, enabling
us to get a better estimate of the domain's page dirtying rate as we go (there are often
contiguous ranges of pfns that have similar behaviour, and we want to mix them up)". Pass
position N visits pfn permute(N): rotate N's `order_nr` low bits left by 10, repeated while
the result is >= p2m_size (`order_nr` = bits of p2m_size - 1). Each pass of the sender
walks N = 0 .. p2m_size-1, so the pages of one pass go out in this order.

`scan_position(pfns, n)` inverts it (rotate right, the same cycle walk), so a set of pending
pfns is put in send order with one argsort, without building the whole permutation.

The first pass of a 2**k-page guest sends every pfn: its 16 chunks are then fixed column blocks
of memory seen as 1024-page rows, and `ColumnChunk` reads them through strided views, so a
64 GiB guest's first pass needs neither its 16 M-entry order nor a gather per chunk.
"""

from __future__ import annotations

import numpy as np

__all__ = ["order_of", "permute", "scan_position", "send_order", "chunked_send_order", "ColumnChunk",
           "column_chunks"]


def order_of(p2m_size: int) -> int:
    """for (i = p2m_size-1, order_nr = 0; i; i >>= 1, order_nr++): the bit length of p2m_size - 1."""
    return int(max(int(p2m_size) - 1, 0)).bit_length()


def _walk(x: np.ndarray, n: int, left: bool) -> np.ndarray:
    o = order_of(n)
    if o <= 10:   # rotating o <= 10 bits by 10 is the identity (and C's shift by o-10 < 0 is undefined)
        return x
    mask, sh = (1 << o) - 1, o - 10
    a, b = (sh, 10) if left else (10, sh)   # rotate left by 10 = right by o-10, and the reverse
    x = np.asarray(x, dtype=np.int64)
    v = x >> a
    v |= x << b
    v &= mask
    todo = np.flatnonzero(v >= n)
    while todo.size:   # do { rotate } while (i >= nr): a cycle walk, so the result stays a bijection on [0, n)
        w = v[todo]
        w = ((w >> a) | (w << b)) & mask
        v[todo] = w
        todo = todo[w >= n]
    return v


def permute(i, p2m_size: int) -> np.ndarray:
    """xc_domain_save's permute(i, nr, order_nr) for an array of positions i."""
    return _walk(np.asarray(i, dtype=np.int64), int(p2m_size), left=True)


def scan_position(pfns, p2m_size: int) -> np.ndarray:
    """The pass position N at which the sender reaches each pfn (the inverse of `permute`)."""
    return _walk(np.asarray(pfns, dtype=np.int64), int(p2m_size), left=False)


def send_order(pfns: np.ndarray, p2m_size: int) -> np.ndarray:
    """`pfns` in the order one pass of xc_domain_save sends them."""
    pfns = np.asarray(pfns, dtype=np.int64)
    n, o = int(p2m_size), order_of(p2m_size)
    if o <= 10 or pfns.size < 2:
        return pfns
    if n == 1 << o:
        if pfns.size == n:   # every pfn: the permutation itself
            return permute(np.arange(n, dtype=np.int64), n)
        if np.all(pfns[1:] > pfns[:-1]):
            # no cycle walk: the position is pfn rotated right by 10, so for ascending pfns the
            # order is a stable sort on the low 10 bits alone (a radix sort on 16-bit keys)
            return pfns[np.argsort((pfns & 1023).astype(np.uint16), kind="stable")]
    return pfns[np.argsort(scan_position(pfns, n), kind="stable")]


def chunked_send_order(pfns: np.ndarray, p2m_size: int, chunk: int) -> np.ndarray:
    """`send_order`, but with each run of `chunk` entries sorted: the engine sends a chunk as one
    unit (read, peek, store together), so only which pfns share a chunk matters, and sorted
    chunks read memory in order. A pass of at most one chunk is returned as given."""
    pfns = np.asarray(pfns, dtype=np.int64)
    n, o = int(p2m_size), order_of(p2m_size)
    if o <= 10 or pfns.size <= chunk:
        return pfns
    if column_chunks(pfns.size, n, chunk):
        # positions [c*chunk, (c+1)*chunk) rotated left by 10 are the pfns whose low 10 bits
        # lie in [64c, 64c + 64): build them sorted, chunk by chunk
        hi = np.arange(n >> 10, dtype=np.int64)[None, :, None] << 10
        return (hi + (np.arange(16, dtype=np.int64)[:, None, None] << 6)
                + np.arange(64, dtype=np.int64)[None, None, :]).ravel()
    order = send_order(pfns, n)
    out = np.empty_like(order)
    for a in range(0, order.size, chunk):
        out[a:a + chunk] = np.sort(order[a:a + chunk])
    return out


# --- a full pass without the pfn array ---------------------------------------------------------

ROW = 1024   # rotating by 10 bits: a pass position's high bits pick the column of a 1024-page row


def column_chunks(n_pfns: int, p2m_size: int, chunk: int) -> bool:
    """Whether `chunked_send_order` of every pfn cuts the pass into 16 column blocks: chunk c is
    then the pfns whose low 10 bits lie in [64c, 64c + 64), i.e. `ColumnChunk(c, p2m_size)`."""
    n = int(p2m_size)
    return order_of(n) > 10 and int(n_pfns) == n == 1 << order_of(n) and chunk * 16 == n


class ColumnChunk:
    """Chunk `c` of a full permuted pass, as columns [64c, 64c + 64) of memory seen as rows of
    1024 pages, less the pfns `without()` dropped; it reads through strided views instead of a
    pfn array and a gather. `array()` is the same pfns as `chunked_send_order` lists (sorted), and
    `take(a)` equals `a[array()]` for any per-pfn array `a` of p2m_size entries."""

    __slots__ = ("lo", "hi", "n", "r0", "keep", "size")

    def __init__(self, c: int, p2m_size: int, *, r0: int = 0, keep: np.ndarray | None = None) -> None:
        self.lo, self.hi, self.n = 64 * int(c), 64 * int(c) + 64, int(p2m_size)
        self.r0, self.keep = r0, keep   # keep: which pages of rows r0.. (a 2-D mask) are still sent
        self.size = (self.n >> 4) - (0 if keep is None else int(keep.size - np.count_nonzero(keep)))

    def __len__(self) -> int:
        return self.size

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Anything that indexes with it or converts it as numpy does gets the pfn array."""
        out = self.array()
        return out if dtype is None else out.astype(dtype)

    def view(self, a: np.ndarray) -> np.ndarray:
        """The chunk's entries of `a` as a (rows, 64) strided view, row-major = pfn order."""
        return a[:self.n].reshape(-1, ROW)[:, self.lo:self.hi]

    def without(self, drop: np.ndarray) -> "ColumnChunk":
        """The whole chunk less the pages where `drop` (a (rows, 64) mask, as `view` gives) is set."""
        if self.keep is not None:
            raise ValueError("ColumnChunk.without applies to a whole chunk, once")
        try:   # a row of 64 flags is 8 words: test words, not bytes (a view when the rows are contiguous)
            words = drop.view(np.uint64)
        except ValueError:
            words = drop
        rows = np.flatnonzero(words.any(axis=1))
        if rows.size == 0:
            return self
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        return ColumnChunk(self.lo // 64, self.n, r0=r0, keep=~drop[r0:r1])

    def take(self, a: np.ndarray) -> np.ndarray:
        """`a[self.array()]`: untouched rows copied from the view, the masked rows compressed."""
        return self._pick(self.view(a))

    def array(self) -> np.ndarray:
        """The pfns, sorted (int64)."""
        rows = np.arange(self.n // ROW, dtype=np.int64) * ROW
        return self._pick(rows[:, None] + np.arange(self.lo, self.hi, dtype=np.int64)[None, :])

    def _pick(self, v: np.ndarray) -> np.ndarray:
        """v's entries in row-major order, only the kept ones in rows r0.. (copied into one array)."""
        if self.keep is None:
            return v.ravel()
        r0, r1 = self.r0, self.r0 + self.keep.shape[0]
        out = np.empty(self.size, dtype=v.dtype)
        a, b = r0 * 64, self.size - (v.shape[0] - r1) * 64
        out[:a].reshape(r0, 64)[...] = v[:r0]
        out[a:b] = v[r0:r1][self.keep]
        out[b:].reshape(-1, 64)[...] = v[r1:]
        return out
