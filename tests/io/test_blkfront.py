"""blkfront (Linux drivers/block/xen-blkfront.c): batching behind one notification, the waiting queue."""

from vmlab.io.blkif import BLKIF_OP_WRITE, BLKIF_RSP_OKAY


def _pages(hv, io, d, n, write=True):
    pfns = io.alloc_pages(d, n)
    if write:
        hv.guest_write(d, pfns)
    return pfns


def test_a_batch_of_requests_costs_one_notification(vbd):
    hv, d, io, dev = vbd
    f = dev.front
    before = f.counts["notify_sent"]
    for i in range(8):
        f.submit(BLKIF_OP_WRITE, i * 8, _pages(hv, io, d, 1), push=False)
    f.kick()
    io.run()
    assert f.counts["notify_sent"] - before == 1
    assert len(f.completed) == 8 and all(s == BLKIF_RSP_OKAY for s in f.completed.values())


def test_requests_beyond_the_ring_wait_and_all_complete(vbd):
    hv, d, io, dev = vbd
    pfns = _pages(hv, io, d, 1)
    ids = [dev.front.submit(BLKIF_OP_WRITE, i * 8, pfns, push=False) for i in range(100)]
    assert dev.front.ring.full() and len(dev.front.waiting) == 68
    dev.front.kick()
    io.run()
    assert sorted(dev.front.completed) == ids and dev.front.outstanding == 0
