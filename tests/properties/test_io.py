"""Invariants of the I/O model (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DiskSpec, VifSpec
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, SECTORS_PER_PAGE
from vmlab.io.grant_table import GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref
from vmlab.io.hotplug import attach_block, attach_vif
from vmlab.io.ring import BackRing, FrontRing, SharedRing
from vmlab.io.system import io_system, new_io_machine

_blk_op = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from([BLKIF_OP_READ, BLKIF_OP_WRITE]), st.integers(0, 7),
              st.integers(1, 3), st.booleans()),
    st.tuples(st.just("kick")),
    st.tuples(st.just("deliver_back")),
    st.tuples(st.just("backend"), st.integers(1, 4)),
    st.tuples(st.just("deliver_front")),
)


@given(suppress=st.booleans(), ops=st.lists(_blk_op, max_size=40))
def test_every_block_request_completes_exactly_once_with_the_right_data(suppress, ops):
    hv, d = new_io_machine()
    io = io_system(hv)
    dev = attach_block(io, d, DiskSpec(path="/OVS/p.img", vdev="xvda"), suppress=suppress)
    f = dev.front
    content, p2m = hv.memory.content, hv.domains[d].p2m
    pool = io.alloc_pages(d, 3 * 40)
    disk_model: dict[int, int] = {}
    expect_read: dict[int, list[tuple[int, int]]] = {}   # id -> [(pfn, stamp expected)]
    ids = []
    for op in ops:
        if op[0] == "submit":
            _, kind, block, n, push = op
            pfns, pool = pool[:n], pool[n:]
            if kind == BLKIF_OP_WRITE:
                hv.guest_write(d, pfns)
                for i, p in enumerate(pfns):
                    disk_model[block + i] = int(content[p2m[p]])
            else:
                expect_read_pairs = [(p, disk_model.get(block + i, 0)) for i, p in enumerate(pfns)]
            rid = f.submit(kind, block * SECTORS_PER_PAGE, pfns, push=push)
            if kind == BLKIF_OP_READ:
                expect_read[rid] = expect_read_pairs
            ids.append(rid)
        elif op[0] == "kick":
            f.kick()
        elif op[0] == "deliver_back":
            io.deliver_events(0)
        elif op[0] == "backend":
            io.run_backends(budget=op[1])
        else:
            io.deliver_events(d)
    f.kick()
    io.run()
    assert sorted(f.completed) == sorted(ids) and f.duplicates == 0
    assert all(s == BLKIF_RSP_OKAY for s in f.completed.values())
    for rid, pairs in expect_read.items():
        assert [int(content[p2m[p]]) for p, _ in pairs] == [s for _, s in pairs]
    assert io.grants.live_mappings(0) == 1 and io.grants.live_grants(d) == 1 and f.leaked_grants == 0
    io.check()


_grant_op = st.one_of(
    st.tuples(st.just("grant"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("map"), st.integers(0, 2), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("unmap"), st.integers(0, 30)),
    st.tuples(st.just("end"), st.integers(0, 30)),
)


@given(ops=st.lists(_grant_op, max_size=30))
def test_a_domain_reaches_a_foreign_frame_only_through_a_live_mapping_and_in_use_grants_stay(ops):
    hv, d1 = new_io_machine()
    io = io_system(hv)
    out = {}
    from vmlab.hypervisor.domain import DomainConfig
    import numpy as np
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, DomainConfig(name="g2", memory_mib=16), out)
    d2 = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], d2, 16 * 1024)
    hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, d2, 4096, np.arange(4096))
    doms = [0, d1, d2]
    granters = [d1, d2]
    frames = {g: [int(hv.domains[g].p2m[100 + i]) for i in range(4)] for g in granters}
    grants: list[tuple[int, int, int, int, bool]] = []   # (granter, ref, grantee, mfn, ro)
    maps: list[tuple[int, int, int, bool]] = []          # (grantee, handle, mfn, ro)
    for op in ops:
        if op[0] == "grant":
            _, gi, ei, fi, ro = op
            g, e = granters[gi], doms[ei]
            ref = io.grants.table(g).grant_foreign_access(e, frames[g][fi], readonly=ro)
            grants.append((g, ref, e, frames[g][fi], ro))
        elif op[0] == "map" and grants:
            _, ei, k, ro = op
            g, ref = grants[k % len(grants)][:2]
            e = doms[ei]
            t = io.grants.table(g)   # the entry as it is now (a ref may have been revoked and reused)
            live, allowed, mfn, gro = t.flags[ref] & 3 == 1, t.domid_of[ref], t.frame[ref], bool(t.flags[ref] & 4)
            rc = hv.hypercall(e, "grant_table_op", GNTTABOP_map_grant_ref,
                              [{"ref": ref, "dom": g, "flags": GNTMAP_host_map | (GNTMAP_readonly if ro else 0)}], 1, out)
            ok = rc == 0 and out["status"][0] == GNTST_okay
            assert ok == (live and e == allowed and (ro or not gro))
            if ok:
                maps.append((e, out["handle"][0], mfn, ro))
        elif op[0] == "unmap" and maps:
            e, h, mfn, ro = maps.pop(op[1] % len(maps))
            hv.hypercall(e, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h}], 1, out)
            assert out["status"] == [GNTST_okay]
        elif op[0] == "end" and grants:
            g, ref, e, mfn, ro = grants[op[1] % len(grants)]
            t = io.grants.table(g)
            in_use = t.pin_read[ref] + t.pin_write[ref] > 0
            was_live = t.flags[ref] & 3 == 1
            assert t.end_foreign_access(ref) == (not in_use)
            if in_use:
                assert t.flags[ref] & 3 == 1 or not was_live
        # The access rule, for every domain and every frame in play.
        for dom in doms:
            for g in granters:
                for mfn in frames[g]:
                    for write in (False, True):
                        expect = dom == g or any(m == mfn and e == dom and (not write or not ro) for e, _, m, ro in maps)
                        assert (io.grants.frame_access(dom, mfn, write=write) == 0) == expect
        io.check()


@settings(max_examples=50)
@given(disks=st.integers(0, 2), vifs=st.integers(0, 2), inflight=st.integers(0, 5))
def test_after_release_nothing_of_the_domain_remains(disks, vifs, inflight):
    hv, d = new_io_machine()
    io = io_system(hv)
    blks = [attach_block(io, d, DiskSpec(path=f"/OVS/d{i}.img", vdev=f"xvd{'ab'[i]}")) for i in range(disks)]
    for i in range(vifs):
        attach_vif(io, d, VifSpec(vlan=10 + i))
    pfns = io.alloc_pages(d, 1)
    for b in blks:
        for k in range(inflight):
            b.front.submit(BLKIF_OP_WRITE, k * 8, pfns)   # queued, maybe not yet served
    io.release_domain(d)
    assert all(v == 0 for v in io.leftovers(d).values()), io.leftovers(d)
    assert io.grants.live_mappings(0) == 0 and io.events.open_ports(0) == 0
    io.check()
    assert not any(f"/{d}/" in p or p.endswith(f"/{d}") for p in io.xenstore.nodes if p.startswith("/local/domain/0/backend"))


@given(start=st.integers(0, 2**32 - 1), steps=st.lists(st.sampled_from(["put", "push", "take", "idle"]), max_size=60))
def test_a_consumer_that_said_it_was_idle_is_always_notified_of_new_work(start, steps):
    s = SharedRing.init(8, start)
    f, b = FrontRing(s), BackRing(s)
    waiting = True            # a fresh ring asks for the first request (req_event = req_prod + 1)
    for step in steps:
        if step == "put" and not f.full():
            f.put_request(0)
        elif step == "push":
            new = s.req_prod != f.req_prod_pvt
            notify = f.push_requests()
            if new and waiting:
                assert notify
            if notify:
                waiting = False
        elif step == "take" and b.unconsumed_requests():
            b.get_request()
            b.put_response(0)
            b.push_responses()
            f.get_response() if f.unconsumed_responses() else None
        elif step == "idle":
            if not b.final_check_for_requests():
                waiting = True
    assert (s.req_prod - b.req_cons) & 0xFFFFFFFF <= 8


_GARBAGE: dict = {}

_junk = st.one_of(st.none(), st.integers(-5, 5000), st.text(max_size=3), st.floats(allow_nan=True),
                  st.lists(st.integers(), max_size=3),
                  st.dictionaries(st.sampled_from(["ref", "dom", "flags", "handle", "port", "remote_dom",
                                                   "remote_port", "virq", "vcpu", "source", "dest", "len",
                                                   "nr_frames"]),
                                  st.one_of(st.integers(-3, 70000), st.text(max_size=2), st.none(),
                                            st.dictionaries(st.sampled_from(["ref", "domid", "gmfn", "offset"]),
                                                            st.integers(-3, 70000), max_size=3)),
                                  max_size=4))


@given(call=st.sampled_from(["grant_table_op", "event_channel_op"]), cmd=st.integers(-1, 12),
       args=st.lists(_junk, max_size=3))
def test_garbage_from_a_guest_gets_an_errno_never_an_exception(call, cmd, args):
    if "m" not in _GARBAGE:  # one machine for every example: the property is only that nothing raises
        _GARBAGE["m"] = new_io_machine()
    hv, d = _GARBAGE["m"]
    if call == "grant_table_op" and args and isinstance(args[0], dict):
        args[0] = [args[0]]
    rc = hv.hypercall(d, call, cmd, *args)
    assert isinstance(rc, int)


_net_op = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 1), st.integers(14, 1514), st.booleans()),
    st.tuples(st.just("kick"), st.integers(0, 1)),
    st.tuples(st.just("deliver"), st.integers(0, 2)),
    st.tuples(st.just("backends"), st.integers(1, 3)),
)


@settings(max_examples=40)
@given(same_vlan=st.booleans(), ops=st.lists(_net_op, max_size=30))
def test_frames_arrive_once_in_order_with_their_data_and_never_cross_vlans(same_vlan, ops):
    hv, d1 = new_io_machine()
    io = io_system(hv)
    out = {}
    from vmlab.hypervisor.domain import DomainConfig
    import numpy as np
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, DomainConfig(name="g2", memory_mib=64), out)
    d2 = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], d2, 64 * 1024)
    hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, d2, 16384, np.arange(16384))
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], d2)
    io.xenstore.introduce_domain(d2, "g2")
    nets = [attach_vif(io, d1, VifSpec(vlan=5)), attach_vif(io, d2, VifSpec(vlan=5 if same_vlan else 6))]
    sent: list[list[tuple[int, int]]] = [[], []]   # frames addressed to guest i: (length, stamp)
    for op in ops:
        if op[0] == "send":
            _, src, length, push = op
            tid, stamp = nets[src].front.send(nets[1 - src].mac, length, push=push)
            if tid >= 0:
                sent[1 - src].append((length, stamp))
        elif op[0] == "kick":
            nets[op[1]].front.kick()
        elif op[0] == "deliver":
            io.deliver_events([0, d1, d2][op[1]])
        else:
            io.run_backends(budget=op[1])
    for n in nets:
        n.front.kick()
    io.run()
    for i, n in enumerate(nets):
        assert n.front.received == (sent[i] if same_vlan else [])
        assert n.back.counts["rx_dropped"] == 0
    assert io.grants.live_mappings(0) == 4       # the two rings of each vif, nothing else
    io.check()
