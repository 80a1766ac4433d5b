"""blkback's hypercall budget: what the block path costs in hypercalls must not change with its speed.

Linux blkback (drivers/xen/blkback/blkback.c, dispatch_rw_block_io / fast_flush_area) maps
every segment of the requests it takes together with one GNTTABOP_map_grant_ref and unmaps
them with one GNTTABOP_unmap_grant_ref, and notifies the frontend through
RING_PUSH_RESPONSES_AND_CHECK_NOTIFY. These counts were recorded before the batch path
was made faster (issue 10) and are the specification it keeps.
"""

from collections import Counter

import pytest

from vmlab.hypervisor.domain import DiskSpec
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, SECTORS_PER_PAGE
from vmlab.io.hotplug import attach_block
from vmlab.io.system import io_system, new_io_machine


def _workload(n: int, batch: int, budget: int | None):
    """`n` requests, alternately a 1-page write and a 2-page read, pushed `batch` at a time."""
    hv, d = new_io_machine()
    hv.trace.capacity = 100 * n
    io = io_system(hv)
    dev = attach_block(io, d, DiskSpec(path="/OVS/w.img", vdev="xvda"))
    f = dev.front
    pfns = io.alloc_pages(d, batch * 2)
    hv.guest_write(d, pfns)
    done = 0
    while done < n:
        for i in range(batch):
            op = BLKIF_OP_WRITE if (done + i) % 2 == 0 else BLKIF_OP_READ
            f.submit(op, ((done + i) % 512) * SECTORS_PER_PAGE, pfns[2 * i:2 * i + 1 + (i % 2)], push=False)
        f.kick()
        io.deliver_events(0)
        io.run_backends(budget)
        io.deliver_events(d)
        done += batch
    io.run()
    calls = Counter(e.detail for e in hv.trace.events if e.kind == "hypercall" and e.detail.startswith(("grant", "event")))
    return hv, io, dev, calls


# (n, batch, budget) -> (front hypercalls, back hypercalls, back notifications, map calls, unmap calls, sends)
RECORDED = {
    (3200, 32, None): (101, 302, 100, 101, 100, 200),
    (3200, 32, 5): (86, 557, 185, 186, 185, 270),
    (105, 7, 3): (3, 53, 17, 18, 17, 19),
}


@pytest.mark.parametrize("case", sorted(RECORDED, key=str))
def test_blkback_makes_exactly_the_recorded_hypercalls(case):
    hv, io, dev, calls = _workload(*case)
    front, back = dev.front.counts, dev.back.counts
    n = case[0] + (-case[0]) % case[1]
    segs = sum(1 + (i % case[1]) % 2 for i in range(n))
    assert (front["hypercalls"], back["hypercalls"], back["notify_sent"], calls["grant_table_op(0)"],
            calls["grant_table_op(1)"], calls["event_channel_op(4)"]) == RECORDED[case]
    assert back["grant_maps"] == back["grant_unmaps"] == back["segments"] == segs
    assert io.grants.counts["map"] == segs + 1 and io.grants.counts["unmap"] == segs  # + the ring's own mapping
    assert back["responses"] == n and back["errors"] == 0 and len(dev.front.completed) == n
    assert io.grants.live_mappings(0) == 1  # only the ring stays mapped
    io.check()
