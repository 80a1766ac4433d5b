"""blkback's batch fast path (vmlab/io/blkback_bulk.py) leaves exactly what the one-by-one path leaves.

XenLinux 2.6.18 blkback issues one GNTTABOP_map_grant_ref per request (dispatch_rw_block_io)
and one GNTTABOP_unmap_grant_ref per request (fast_flush_area). The fast path applies a batch's
maps and unmaps at once and traces each hypercall as issued; these specifications run the same
seeded workloads -- failing and foreign grants, read-only grants and disks, repeated refs,
malformed requests, a trace subscriber, held frames -- through both paths and compare every
observable: trace, counters, responses, grant entries, maptrack, frame counts and contents, disk.
"""

import numpy as np
import pytest

from vmlab.hypervisor.domain import DiskSpec
from vmlab.io import blkback_bulk
from vmlab.io.blkif import (BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER,
                            SECTORS_PER_PAGE, BlkifRequest, BlkifSegment)
from vmlab.io.hotplug import attach_block
from vmlab.io.system import io_system, new_io_machine


def _raw_batch(rng, io, d, dev, pfns, rid):
    """A batch of hand-made requests: good, bad ref, foreign, read-only grant read, repeated refs."""
    t = io.grants.table(d)
    mfn = [io.mfn(d, int(p)) for p in pfns[:4]]
    good = t.grant_foreign_access(0, mfn[0], readonly=False)
    ro = t.grant_foreign_access(0, mfn[1], readonly=True)
    foreign = t.grant_foreign_access(7, mfn[2], readonly=True)      # granted to domain 7, not dom0
    same = t.grant_foreign_access(0, mfn[3], readonly=True)
    sector = int(rng.integers(0, 64)) * SECTORS_PER_PAGE
    reqs = [BlkifRequest(BLKIF_OP_WRITE, rid, sector, (BlkifSegment(good), BlkifSegment(same))),
            BlkifRequest(BLKIF_OP_WRITE, rid + 1, sector, (BlkifSegment(99999),)),
            BlkifRequest(BLKIF_OP_WRITE, rid + 2, sector, (BlkifSegment(ro), BlkifSegment(foreign))),
            BlkifRequest(BLKIF_OP_READ, rid + 3, sector, (BlkifSegment(ro),)),            # read into a read-only grant
            BlkifRequest(BLKIF_OP_WRITE, rid + 4, sector, (BlkifSegment(same), BlkifSegment(same))),  # a ref twice
            BlkifRequest(BLKIF_OP_READ, rid + 5, sector, (BlkifSegment(good, 2, 5),)),    # the ref again, next request
            BlkifRequest(BLKIF_OP_WRITE_BARRIER, rid + 6, 0, (BlkifSegment(good),)),
            BlkifRequest(BLKIF_OP_FLUSH_DISKCACHE, rid + 7, 0, ()),
            BlkifRequest(BLKIF_OP_WRITE, rid + 8, dev.back.disk.sectors - 4, (BlkifSegment(good),))]
    for r in rng.permutation(len(reqs)):
        dev.front.submit_raw(reqs[int(r)], push=False)
    dev.front.kick()
    io.run()


def _run(seed: int, exact: bool, *, held: bool = False, subscribe: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    hv, d = new_io_machine()
    io = io_system(hv)
    seen: list = []
    if subscribe:
        hv.trace.subscribe(seen.append, {"hypercall"})
    devs = [attach_block(io, d, DiskSpec(path="/OVS/a.img", vdev="xvda")),
            attach_block(io, d, DiskSpec(path="/OVS/iso/cd.img", vdev="xvdc", mode="r"))]
    for dev in devs:
        dev.back.exact = exact
    pfns = io.alloc_pages(d, 48)
    hv.guest_write(d, pfns)
    if held:
        m = int(hv.domains[0].p2m[-1])   # a still-referenced frame waiting for `reap`: every hypercall reaps
        hv.memory.tot_count[m] += 1
        hv.held[m] = 0
    for round_ in range(6):
        for dev in devs:
            for _ in range(int(rng.integers(1, 20))):
                op = BLKIF_OP_WRITE if rng.random() < 0.5 else BLKIF_OP_READ
                k = int(rng.integers(1, 4))
                at = int(rng.integers(0, 48 - k))
                dev.front.submit(op, int(rng.integers(0, 512)) * SECTORS_PER_PAGE, pfns[at:at + k], push=False)
            dev.front.kick()
            io.deliver_events(0)
            io.run_backends(None if round_ % 2 else int(rng.integers(1, 8)))
            io.deliver_events(d)
        io.run()
        _raw_batch(rng, io, d, devs[0], pfns[int(rng.integers(0, 40)):], 10_000 * (round_ + 1))
    io.run()
    mem, gt = hv.memory, io.grants.table(d)
    return {"trace": hv.trace.save(), "seen": [(e.kind, e.detail, e.value) for e in seen],
            "back": [dict(x.back.counts) for x in devs], "front": [dict(x.front.counts) for x in devs],
            "completed": [dict(x.front.completed) for x in devs], "grants": dict(io.grants.counts),
            "entries": (gt.flags, gt.pin_read, gt.pin_write),
            "maptrack": {k: (dict(m.handles), dict(m.by_mfn), m.next_handle) for k, m in io.grants.maptrack.items()},
            "disks": [(dict(x.back.disk.data), dict(x.back.disk.counts)) for x in devs],
            "content": mem.content.copy(), "tot": mem.tot_count.copy(), "type": mem.type_count.copy(), "held": dict(hv.held)}


def _same(a: dict, b: dict) -> None:
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_batch_path_leaves_exactly_what_one_hypercall_at_a_time_leaves(seed):
    fast, exact = _run(seed, exact=False), _run(seed, exact=True)
    _same(fast, exact)
    assert fast["back"][0]["errors"] > 0 and fast["back"][1]["errors"] > 0   # the failing cases did run


@pytest.mark.parametrize("case", [{"held": True}, {"subscribe": True}])
def test_held_frames_and_trace_subscribers_give_the_same_result(case):
    _same(_run(5, exact=False, **case), _run(5, exact=True, **case))


def test_the_fast_path_is_taken_for_plain_batches_and_not_when_a_frame_is_held(monkeypatch):
    calls = []
    real = blkback_bulk.map_unmap_bulk
    monkeypatch.setattr("vmlab.io.blkback.map_unmap_bulk", lambda *a: calls.append(1) or real(*a))
    _run(0, exact=False)
    assert calls
    calls.clear()
    _run(0, exact=False, held=True)
    assert not calls
