"""The blkif protocol (xen/include/public/io/blkif.h): device ids, records, data through the whole path."""

import pytest

from vmlab.errors import ConfigError
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, vbd_devid


def _pages(hv, io, d, n, write=True):
    pfns = io.alloc_pages(d, n)
    if write:
        hv.guest_write(d, pfns)
    return pfns


def test_vbd_device_ids_follow_the_xvd_numbering():
    assert vbd_devid("xvda") == 51712 and vbd_devid("xvdb") == 51728 and vbd_devid("hda") == 768
    with pytest.raises(ConfigError, match="xvdX"):
        vbd_devid("floppy")


def test_a_write_then_a_read_returns_the_same_data(vbd):
    hv, d, io, dev = vbd
    src = _pages(hv, io, d, 3)
    dst = _pages(hv, io, d, 3, write=False)
    w = dev.front.submit(BLKIF_OP_WRITE, 800, src)
    io.run()
    r = dev.front.submit(BLKIF_OP_READ, 800, dst)
    io.run()
    assert dev.front.completed == {w: BLKIF_RSP_OKAY, r: BLKIF_RSP_OKAY}
    mem, p2m = hv.memory.content, hv.domains[d].p2m
    assert [int(mem[p2m[p]]) for p in dst] == [int(mem[p2m[p]]) for p in src]
    assert dev.back.disk.counts["sectors_written"] == 24


def test_a_partial_page_read_gets_exactly_the_sectors_asked_for(vbd):
    hv, d, io, dev = vbd
    src = _pages(hv, io, d, 1)
    dev.front.submit(BLKIF_OP_WRITE, 0, src)
    io.run()
    dst = _pages(hv, io, d, 1, write=False)
    dev.front.submit(BLKIF_OP_READ, 2, dst, first_sect=2, last_sect=3)
    io.run()
    assert dev.back.disk.counts["sectors_read"] == 2
    assert hv.memory.content[hv.domains[d].p2m[dst[0]]] != hv.memory.content[hv.domains[d].p2m[src[0]]]
