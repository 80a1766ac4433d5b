"""The order Xen 3's xc_domain_save scans pfns in: `permute()`, a pseudo-random bijection.

tools/libxc/xc_domain_save.c (Xen 3.1): "we scan pages in a pseudo random order, enabling
us to get a better estimate of the domain's page dirtying rate as we go (there are often
contiguous ranges of pfns that have similar behaviour, and we want to mix them up)". Pass
position N visits pfn permute(N): rotate N's `order_nr` low bits left by 10, repeated while
the result is >= p2m_size (`order_nr` = bits of p2m_size - 1). Each pass of the sender
walks N = 0 .. p2m_size-1, so the pages of one pass go out in this order.

`scan_position(pfns, n)` inverts it (rotate right, the same cycle walk), so a set of pending
pfns is put in send order with one argsort, without building the whole permutation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["order_of", "permute", "scan_position", "send_order"]


def order_of(p2m_size: int) -> int:
    """for (i = p2m_size-1, order_nr = 0; i; i >>= 1, order_nr++): the bit length of p2m_size - 1."""
    return int(max(int(p2m_size) - 1, 0)).bit_length()


def _walk(x: np.ndarray, n: int, left: bool) -> np.ndarray:
    o = order_of(n)
    if o <= 10:   # rotating o <= 10 bits by 10 is the identity (and C's shift by o-10 < 0 is undefined)
        return x
    mask, sh = (1 << o) - 1, o - 10
    x = np.array(x, dtype=np.int64, copy=True)
    todo = np.arange(x.size)
    while True:   # do { rotate } while (i >= nr): a cycle walk, so the result stays a bijection on [0, n)
        v = x[todo]
        v = ((v >> sh) | (v << 10)) & mask if left else ((v << sh) | (v >> 10)) & mask
        x[todo] = v
        todo = todo[v >= n]
        if todo.size == 0:
            return x


def permute(i, p2m_size: int) -> np.ndarray:
    """xc_domain_save's permute(i, nr, order_nr) for an array of positions i."""
    return _walk(np.asarray(i, dtype=np.int64), int(p2m_size), left=True)


def scan_position(pfns, p2m_size: int) -> np.ndarray:
    """The pass position N at which the sender reaches each pfn (the inverse of `permute`)."""
    return _walk(np.asarray(pfns, dtype=np.int64), int(p2m_size), left=False)


def send_order(pfns: np.ndarray, p2m_size: int) -> np.ndarray:
    """`pfns` in the order one pass of xc_domain_save sends them."""
    pfns = np.asarray(pfns, dtype=np.int64)
    if order_of(p2m_size) <= 10 or pfns.size < 2:
        return pfns
    return pfns[np.argsort(scan_position(pfns, p2m_size), kind="stable")]
