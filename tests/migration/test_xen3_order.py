"""Xen 3 sends each pass in xc_domain_save's permute() order, not pfn order."""

import numpy as np
import pytest

from vmlab.migration import MemoryImage, TargetImage, UniformWrites, Xen3Policy, run_migration
from vmlab.migration.link import Link
from vmlab.migration.xen3_order import chunked_send_order, order_of, permute, scan_position, send_order


def _permute_c(i: int, nr: int, order_nr: int) -> int:
    """tools/libxc/xc_domain_save.c (Xen 3.1) permute(), transcribed."""
    while True:
        i = ((i >> (order_nr - 10)) | (i << 10)) & ((1 << order_nr) - 1)
        if i < nr:
            return i


@pytest.mark.parametrize("nr", [1 << 17, 131_000, 4096 + 5, 2 ** 20 + 3])
def test_permute_is_xc_domain_saves_bijection(nr):
    o = order_of(nr)
    assert o == len(bin(nr - 1)) - 2        # "e.g. nr->order 15->4 16->4 17->5"
    sample = np.arange(0, nr, max(1, nr // 997))
    assert permute(sample, nr).tolist() == [_permute_c(int(i), nr, o) for i in sample]
    full = permute(np.arange(nr), nr)
    assert np.array_equal(np.sort(full), np.arange(nr))                 # a bijection on [0, nr)
    assert np.array_equal(scan_position(full, nr), np.arange(nr))       # and its inverse
    assert np.array_equal(send_order(np.arange(nr), nr), full)


def test_order_nr_follows_the_c_loop():
    assert [order_of(n) for n in (15, 16, 17, 1 << 17)] == [4, 4, 5, 17]


def test_a_xen3_pass_sends_in_permuted_order_and_skips_spread_over_the_pass():
    """With a working set at the front of memory, pfn order would meet every re-dirtied page in
    the first chunks; permute() spreads them over the pass, so the skip count of round 1 differs
    from a pfn-order scan (xc_domain_save's stats line "sent %d, skipped %d")."""
    def run(permuted):
        src = MemoryImage(1 << 15)
        rep = run_migration(src, TargetImage(src.n_pages), policy=Xen3Policy().with_(permuted_scan=permuted),
                            link=Link(bandwidth_mbps=1000), workload=UniformWrites(rate_pages_s=50_000, wws_pages=4096),
                            seed=3)
        return rep
    a, b = run(True), run(False)
    assert a.status == b.status == "completed" and a.verified and b.verified
    assert a.rounds[0].pages_skipped != b.rounds[0].pages_skipped
    assert Xen3Policy().permuted_scan is True


@pytest.mark.parametrize("n, chunk", [(1 << 16, 1 << 12), (1 << 15, 1024), (50_000, 3125)])
def test_chunked_send_order_keeps_each_chunks_pfn_set(n, chunk):
    """The engine sends a chunk as one unit, so only each chunk's set of pfns must match permute()."""
    full = send_order(np.arange(n), n)
    got = chunked_send_order(np.arange(n), n, chunk)
    for a in range(0, n, chunk):
        assert np.array_equal(np.sort(full[a:a + chunk]), got[a:a + chunk])
