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
from vmlab.io.blkif import (BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
                            BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
                            SECTORS_PER_PAGE, BlkifRequest, BlkifSegment)
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


def _raw(dev, req):
    before = dict(dev.back.disk.counts)
    dev.front.submit_raw(req)
    dev.front.io.run()
    assert dev.back.disk.counts == before, "a malformed request must never reach the disk"
    return dev.front.completed[req.id]


def _pages(hv, io, d, n, write=True):
    pfns = io.alloc_pages(d, n)
    if write:
        hv.guest_write(d, pfns)
    return pfns


def test_the_backend_holds_no_mapping_and_the_frontend_no_grant_after_completion(vbd):
    hv, d, io, dev = vbd
    dev.front.submit(BLKIF_OP_WRITE, 0, _pages(hv, io, d, BLKIF_MAX_SEGMENTS_PER_REQUEST))
    io.run()
    assert dev.back.counts["grant_maps"] == dev.back.counts["grant_unmaps"] == 11
    assert io.grants.live_mappings(0) == 1        # only the ring page
    assert io.grants.live_grants(d) == 1          # only the ring-ref
    assert dev.front.leaked_grants == 0


def test_a_request_with_more_than_11_segments_gets_an_error_and_never_reaches_the_disk(vbd):
    hv, d, io, dev = vbd
    t = io.grants.table(d)
    pfns = _pages(hv, io, d, 12)
    segs = tuple(BlkifSegment(t.grant_foreign_access(0, io.mfn(d, p), readonly=True)) for p in pfns)
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 900, 0, segs)) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 901, 0, segs[:2], nr_segments=3)) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 902, 0, ())) == BLKIF_RSP_ERROR


def test_bad_grant_refs_and_grants_for_a_foreign_domain_get_errors(vbd):
    hv, d, io, dev = vbd
    t = io.grants.table(d)
    p = _pages(hv, io, d, 2)
    to_other = t.grant_foreign_access(7, io.mfn(d, p[0]), readonly=True)   # granted to domain 7, not dom0
    good = t.grant_foreign_access(0, io.mfn(d, p[1]), readonly=True)
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 910, 0, (BlkifSegment(99999),))) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 911, 0, (BlkifSegment(good), BlkifSegment(to_other)))) == BLKIF_RSP_ERROR
    assert io.grants.live_mappings(0) == 1          # the good segment was unmapped again
    assert _raw(dev, BlkifRequest(BLKIF_OP_READ, 912, 0, (BlkifSegment(good),))) == BLKIF_RSP_ERROR  # read-only grant


def test_bad_sectors_ops_and_garbage_slots_get_errors(vbd):
    hv, d, io, dev = vbd
    t = io.grants.table(d)
    g = t.grant_foreign_access(0, io.mfn(d, _pages(hv, io, d, 1)[0]), readonly=True)
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 920, 0, (BlkifSegment(g, 3, 2),))) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 921, 0, (BlkifSegment(g, 0, 8),))) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE, 922, dev.back.disk.sectors - 4, (BlkifSegment(g),))) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(77, 923, 0, (BlkifSegment(g),))) == BLKIF_RSP_ERROR
    assert _raw(dev, BlkifRequest(BLKIF_OP_WRITE_BARRIER, 924, 0, (BlkifSegment(g),))) == BLKIF_RSP_EOPNOTSUPP
    assert _raw(dev, BlkifRequest(BLKIF_OP_FLUSH_DISKCACHE, 925, 0, ())) == BLKIF_RSP_OKAY


def test_writing_to_a_read_only_disk_is_an_error(machine):
    hv, d, io = machine
    dev = attach_block(io, d, DiskSpec(path="/OVS/iso/cd.img", vdev="xvdc", mode="r"))
    rid = dev.front.submit(BLKIF_OP_WRITE, 0, _pages(hv, io, d, 1))
    io.run()
    assert dev.front.completed[rid] == BLKIF_RSP_ERROR and dev.back.disk.counts["writes"] == 0
