"""Memory release as Xen does it: a frame goes back to the heap only with its last reference.

xen/common/memory.c guest_remove_page (XENMEM_decrease_reservation): drop the pin
(put_page_and_type) and the allocation reference (PGC_allocated, put_page); the page
stays owned by the domain and counted in its tot_pages until the last reference (a
page-table entry, a grant mapping, CR3) goes, when xen/common/page_alloc.c
free_domheap_pages returns it to the heap. A frame still referenced is never reused.
"""

import numpy as np

from vmlab.hardware.host import Host, HostSpec
from vmlab.hardware.memory import FREE, frames_from_mib
from vmlab.hardware.mmu import PTE_P, PTE_RW
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainConfig
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.io.grant_table import GNTMAP_host_map, GNTST_okay, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref
from vmlab.io.system import io_system
from vmlab.paging.direct import MMUEXT, pt_maddr, pv_state


def build(hv: Hypervisor, name: str, mib: int = 16) -> int:
    """createdomain -> max_mem -> populate_physmap -> unpause, as xend does from dom0."""
    out: dict = {}
    assert hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID,
                        DomainConfig(name=name, memory_mib=mib), out) == 0
    d = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], d, mib * 1024)
    pfns = np.arange(frames_from_mib(mib), dtype=np.int64)
    assert hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, d, pfns.size, pfns) == pfns.size
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], d)
    return d


def machine() -> Hypervisor:
    hv = Hypervisor(Host(HostSpec(name="ovs1", pcpus=2, memory_mib=256)), dom0_mem_mib=64)
    pv_state(hv)  # mmu_update / mmuext_op registered
    return hv


def decrease(hv, d, pfns) -> int:
    pfns = np.asarray(pfns, dtype=np.int64)
    return hv.hypercall(d, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, pfns.size, pfns)


def l1_maps_writable(hv, d, table_pfn: int, target_pfn: int) -> tuple[int, int]:
    """The guest writes L1[0] = X | P | RW into one of its frames and pins it as an L1: (T, X)."""
    dom = hv.domains[d]
    t, x = int(dom.p2m[table_pfn]), int(dom.p2m[target_pfn])
    assert hv.hypercall(d, "mmu_update", [(pt_maddr(t, 0), (x << 12) | PTE_P | PTE_RW)]) == 0
    assert hv.hypercall(d, "mmuext_op", [(MMUEXT["PIN_L1_TABLE"], t)]) == 0
    return t, x


def test_break_in_pinned_l1_then_decrease_reservation_keeps_the_frame_out_of_the_heap():
    """guest_remove_page: X is still mapped by a pinned L1, so it is never given to the next guest."""
    hv = machine()
    g1 = build(hv, "attacker")
    t, x = l1_maps_writable(hv, g1, 10, 11)
    assert decrease(hv, g1, [11]) == 1
    assert hv.domains[g1].p2m[11] == C.INVALID_MFN          # gone from the guest's physmap ...
    assert int(hv.memory.owner[x]) == g1                     # ... but still the attacker's frame
    g2 = build(hv, "victim")
    assert x not in set(hv.domains[g2].mfns().tolist())      # never reused while referenced
    hv.check_invariants()
    # The last reference goes (the L1 entry is cleared): now X returns to the heap.
    assert hv.hypercall(g1, "mmu_update", [(pt_maddr(t, 0), 0)]) == 0
    assert int(hv.memory.owner[x]) == FREE
    hv.check_invariants()


def test_break_in_granter_balloons_out_a_frame_the_grantee_maps_writable():
    """__gnttab_map_grant_ref holds a page reference: the granter's release leaves the frame allocated."""
    hv = machine()
    io = io_system(hv)
    g1, g2 = build(hv, "granter"), build(hv, "grantee")
    f = int(hv.domains[g1].p2m[20])
    ref = io.grants.table(g1).grant_foreign_access(g2, f)
    out: dict = {}
    assert hv.hypercall(g2, "grant_table_op", GNTTABOP_map_grant_ref,
                        [{"ref": ref, "dom": g1, "flags": GNTMAP_host_map}], None, out) == 0
    assert out["status"] == [GNTST_okay]
    assert decrease(hv, g1, [20]) == 1
    assert int(hv.memory.owner[f]) == g1
    g3 = build(hv, "bystander")
    assert f not in set(hv.domains[g3].mfns().tolist())
    hv.check_invariants()
    # The grantee unmaps: the last reference goes and the frame is free again.
    assert hv.hypercall(g2, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": out["handle"][0]}]) == 0
    assert int(hv.memory.owner[f]) == FREE
    hv.check_invariants()


def test_decrease_reservation_of_a_pinned_table_drops_the_pin_and_frees_it():
    """guest_remove_page: test_and_clear_bit(_PGT_pinned) -> put_page_and_type; the L1 devalidates."""
    hv = machine()
    g = build(hv, "vm1")
    t, x = l1_maps_writable(hv, g, 10, 11)
    assert decrease(hv, g, [10]) == 1
    assert t not in pv_state(hv).pinned
    assert int(hv.memory.owner[t]) == FREE and int(hv.memory.tot_count[x]) == 0
    hv.check_invariants()


def test_decrease_reservation_of_the_live_cr3_keeps_it_allocated_until_cr3_moves():
    """CR3 holds a type reference (vcpu_destroy_pagetables drops it only at domain death)."""
    hv = machine()
    g = build(hv, "vm1")
    l4 = int(hv.domains[g].p2m[12])
    assert hv.hypercall(g, "mmuext_op", [(MMUEXT["PIN_L4_TABLE"], l4), (MMUEXT["NEW_BASEPTR"], l4)]) == 0
    assert decrease(hv, g, [12]) == 1
    assert l4 not in pv_state(hv).pinned and pv_state(hv).cr3[g] == l4
    assert int(hv.memory.owner[l4]) == g and l4 in hv.held
    assert hv.hypercall(0, "memory_op", C.XENMEM_current_reservation, g) == frames_from_mib(16)  # d->tot_pages
    hv.check_invariants()
    other = int(hv.domains[g].p2m[13])
    assert hv.hypercall(g, "mmuext_op", [(MMUEXT["NEW_BASEPTR"], other)]) == 0
    assert int(hv.memory.owner[l4]) == FREE
    hv.check_invariants()


def test_destroy_drops_cr3_pins_and_table_references_and_frees_everything():
    """domain_relinquish_resources: vcpu_destroy_pagetables, then relinquish_memory (pins, tables)."""
    hv = machine()
    free0 = hv.memory.free_frames
    g = build(hv, "vm1")
    t, _ = l1_maps_writable(hv, g, 10, 11)
    dom = hv.domains[g]
    l2, l3, l4 = (int(dom.p2m[p]) for p in (20, 21, 22))
    assert hv.hypercall(g, "mmu_update", [(pt_maddr(l2, 0), (t << 12) | PTE_P), (pt_maddr(l3, 0), (l2 << 12) | PTE_P),
                                          (pt_maddr(l4, 0), (l3 << 12) | PTE_P)]) == 0
    assert hv.hypercall(g, "mmuext_op", [(MMUEXT["PIN_L4_TABLE"], l4), (MMUEXT["NEW_BASEPTR"], l4)]) == 0
    assert hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], g) == 0
    st = pv_state(hv)
    assert g not in st.cr3 and not st.pinned and not hv.held
    assert hv.memory.free_frames == free0
    hv.check_invariants()


def test_a_frame_dom0_still_maps_outlives_its_destroyed_owner_as_a_zombie():
    """free_domheap_pages frees a dying domain's page only at its last put_page; the domid is not reused."""
    hv = machine()
    g = build(hv, "vm1")
    x = int(hv.domains[g].p2m[30])
    d0t = int(hv.dom0.p2m[100])
    assert hv.hypercall(0, "mmuext_op", [(MMUEXT["PIN_L1_TABLE"], d0t)]) == 0
    # a foreign mapping, as xc_map_foreign: dom0's own L1, the guest named in foreigndom (do_mmu_update)
    assert hv.hypercall(0, "mmu_update", [(pt_maddr(d0t, 0), (x << 12) | PTE_P | PTE_RW)], 1, {}, g) == 0
    assert hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], g) == 0
    assert hv.held == {x: g} and int(hv.memory.owner[x]) == g
    hv.check_invariants()
    assert build(hv, "vm2") != g          # the zombie keeps its domid
    assert hv.hypercall(0, "mmu_update", [(pt_maddr(d0t, 0), 0)]) == 0
    assert not hv.held and int(hv.memory.owner[x]) == FREE
    hv.check_invariants()


def test_the_balloon_driver_giving_back_a_mapped_page_leaves_it_held():
    """guest/linux.balloon -> XENMEM_decrease_reservation: the same guest_remove_page rule."""
    from vmlab.guest.linux import balloon
    hv = machine()
    g = build(hv, "vm1", mib=64)
    top = int(np.flatnonzero(hv.domains[g].p2m != C.INVALID_MFN)[-1])  # the balloon gives the top pages first
    _, x = l1_maps_writable(hv, g, 10, top)
    balloon(hv, g, hv.domains[g].tot_pages // 2)
    assert hv.domains[g].p2m[top] == C.INVALID_MFN and hv.held == {x: g}
    g2 = build(hv, "vm2")
    assert x not in set(hv.domains[g2].mfns().tolist())
    hv.check_invariants()


def test_grant_and_event_channel_teardown_on_destroy_leave_no_reference():
    """gnttab_release_mappings and evtchn_destroy run in domain_kill before the frames are freed."""
    from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_send
    hv = machine()
    io = io_system(hv)
    g1, g2 = build(hv, "front"), build(hv, "back")
    f = int(hv.domains[g1].p2m[40])
    ref = io.grants.table(g1).grant_foreign_access(g2, f)
    out: dict = {}
    hv.hypercall(g2, "grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ref, "dom": g1, "flags": GNTMAP_host_map}], None, out)
    port = hv.hypercall(g1, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": C.DOMID_SELF, "remote_dom": g2})
    rport = hv.hypercall(g2, "event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": g1, "remote_port": port})
    assert port > 0 and rport > 0
    assert hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], g1) == 0   # the granter dies first
    assert int(hv.memory.owner[f]) == FREE and io.grants.live_mappings(g2) == 0
    assert hv.hypercall(g2, "event_channel_op", EVTCHNOP_send, {"port": rport}) == 0  # the peer's port is unbound now
    hv.check_invariants()
    assert hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], g2) == 0
    assert not hv.held
    hv.check_invariants()


def test_audit_counts_grant_mappings_so_a_mapped_grant_is_not_a_refcount_error():
    """__gnttab_map_grant_ref takes a page reference (and a type reference when writable): audit recounts it."""
    from vmlab.paging.audit import audit
    hv = machine()
    io = io_system(hv)
    g1, g2 = build(hv, "granter"), build(hv, "grantee")
    refs = [io.grants.table(g1).grant_foreign_access(g2, int(hv.domains[g1].p2m[p]), readonly=p % 2 == 1)
            for p in (20, 21)]
    out: dict = {}
    ops = [{"ref": r, "dom": g1, "flags": GNTMAP_host_map | (4 if i % 2 else 0)} for i, r in enumerate(refs)]
    assert hv.hypercall(g2, "grant_table_op", GNTTABOP_map_grant_ref, ops, None, out) == 0
    assert out["status"] == [GNTST_okay, GNTST_okay]
    assert audit(hv, g1) == [] and audit(hv, g2) == []
    hv.check_invariants()
