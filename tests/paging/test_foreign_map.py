"""dom0 reads a guest's memory through foreign mappings (xc_domain_save's xc_map_foreign_batch over
Xen 3.1 do_mmu_update with foreigndom)."""

import numpy as np

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.mmu import PTE_P, PTE_US
from vmlab.hypervisor import constants as C
from vmlab.paging import direct
from vmlab.paging.foreign_map import MAX_BATCH_SIZE, foreign_read, window_frames
from vmlab.paging.direct import MMUEXT, pt_maddr, pv_state


def _guest():
    return boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)


def test_dom0_reads_guest_pages_with_one_mmu_update_per_batch_each_way():
    """xc_domain_save: MAX_BATCH_SIZE 1024 pages per xc_map_foreign_batch; each batch is mapped with
    mmu_update naming the guest in foreigndom, read, and unmapped."""
    k = _guest()
    hv, domid = k.hv, k.domid
    pfns = np.flatnonzero(k.p2m >= 0)[:2500]
    n0 = len(hv.trace)
    stamps = foreign_read(hv, domid, pfns)
    assert np.array_equal(stamps, hv.memory.content[k.p2m[pfns]])
    new = hv.trace.events[n0:]
    names = [e.detail for e in new if e.kind == "hypercall" and e.domid == 0]
    assert names.count("mmu_update") == 2 * 3          # 3 batches (1024, 1024, 452), map + unmap
    assert names.count("mmuext_op") == 2               # the window's L1s validated, then released
    maps = [(e.detail, e.value) for e in new if e.kind == "foreign_map"]
    assert maps == [(f"mmu_update foreigndom={domid}", n) for n in (1024, 1024, 452)]
    # nothing stays mapped or referenced afterwards
    assert np.all(hv.memory.tot_count[k.p2m[pfns]] == 0)
    assert direct.audit(hv, domid) == [] and direct.audit(hv, 0) == []


def test_the_vectorized_request_array_gives_the_same_state_as_the_exact_path():
    """A numpy request array takes the vectorized path only when every request is an independent
    leaf update; the state it leaves equals issuing the same list one request at a time."""
    states = []
    for as_array in (True, False):
        k = _guest()
        hv, domid = k.hv, k.domid
        (w,) = window_frames(hv, 1)
        assert hv.hypercall(0, "mmuext_op", [(MMUEXT["PIN_L1_TABLE"], w)], 1, {}) == 0
        mfns = k.p2m[np.flatnonzero(k.p2m >= 0)[:300]]
        reqs = np.stack([[pt_maddr(w, i) for i in range(300)], (mfns << 12) | (PTE_P | PTE_US)], axis=1)
        out = {}
        arg = reqs if as_array else [tuple(int(x) for x in r) for r in reqs]
        assert hv.hypercall(0, "mmu_update", arg, 300, out, domid) == 0 and out["done"] == 300
        states.append((hv.memory.table(w).tobytes(), hv.memory.tot_count.tobytes(), hv.memory.type_count.tobytes()))
        # without foreigndom the same array is refused at the first request (exact path)
        out = {}
        assert hv.hypercall(0, "mmu_update", reqs, 300, out) == C.EINVAL and out["done"] == 0
    assert states[0] == states[1]


def test_window_frames_are_dom0s_own_untyped_frames():
    k = _guest()
    ws = window_frames(k.hv, 2)
    assert all(int(k.hv.memory.owner[w]) == 0 for w in ws) and MAX_BATCH_SIZE == 1024
    assert pv_state(k.hv).pinned.isdisjoint(ws)


def test_the_batched_read_leaves_the_same_trace_and_state_as_the_one_by_one_path():
    """Like apply_updates: the batches are applied at once only when each would be accepted, and
    every hypercall is still traced as issued (two mmu_update per batch, foreign_map events)."""
    seen = []
    for exact in (True, False):
        k = _guest()
        hv = k.hv
        pfns = np.flatnonzero(k.p2m >= 0)[:2100]
        n0 = len(hv.trace)
        stamps = foreign_read(hv, k.domid, pfns, exact=exact)
        events = [(e.domid, e.kind, e.detail, e.value) for e in hv.trace.events[n0:]]
        m = hv.memory
        seen.append((stamps.tobytes(), events, m.page_type.tobytes(), m.type_count.tobytes(), m.tot_count.tobytes(),
                     frozenset(pv_state(hv).pinned)))
    assert seen[0] == seen[1]
