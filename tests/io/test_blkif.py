import pytest

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DiskSpec
from vmlab.io.blkif import (BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
                            BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
                            BlkifRequest, BlkifSegment, vbd_devid)
from vmlab.io.hotplug import attach_block


@pytest.fixture
def vbd(machine):
    hv, d, io = machine
    dev = attach_block(io, d, DiskSpec(path="/OVS/running_pool/vm1/System.img", vdev="xvda"))
    return hv, d, io, dev


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


def test_the_backend_holds_no_mapping_and_the_frontend_no_grant_after_completion(vbd):
    hv, d, io, dev = vbd
    dev.front.submit(BLKIF_OP_WRITE, 0, _pages(hv, io, d, BLKIF_MAX_SEGMENTS_PER_REQUEST))
    io.run()
    assert dev.back.counts["grant_maps"] == dev.back.counts["grant_unmaps"] == 11
    assert io.grants.live_mappings(0) == 1        # only the ring page
    assert io.grants.live_grants(d) == 1          # only the ring-ref
    assert dev.front.leaked_grants == 0


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


def _raw(dev, req):
    before = dict(dev.back.disk.counts)
    dev.front.submit_raw(req)
    dev.front.io.run()
    assert dev.back.disk.counts == before, "a malformed request must never reach the disk"
    return dev.front.completed[req.id]


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
