"""PV direct paging: Xen's page-type and reference-count rules, enforced by the hypercalls."""

import numpy as np
import pytest

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_G, PTE_P, PTE_PS, PTE_PWT, PTE_RW, PTE_US, make_pte
from vmlab.hypervisor import constants as C
from vmlab.paging import direct
from vmlab.paging.direct import MMUEXT, apply_updates, pt_maddr, pv_state

RW = PTE_P | PTE_RW | PTE_US
RO = PTE_P | PTE_US


@pytest.fixture
def guest():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    hv, domid = k.hv, k.domid
    mfns = k.p2m[:64].astype(int).tolist()
    return hv, domid, mfns


def snapshot(hv):
    m = hv.memory
    st = pv_state(hv)
    return (m.page_type.tobytes(), m.type_count.tobytes(), m.tot_count.tobytes(),
            {k: w.tobytes() for k, w in m.words.items() if w.any()}, frozenset(st.pinned), dict(st.cr3))


def pin(hv, domid, level, mfn):
    return hv.hypercall(domid, "mmuext_op", [(MMUEXT[f"PIN_L{level}_TABLE"], mfn)], 1, {})


def upd(hv, domid, reqs, out=None):
    return hv.hypercall(domid, "mmu_update", reqs, len(reqs), out if out is not None else {})


def build_chain(hv, domid, mfns):
    """L4=mfns[0] -> L3=mfns[1] -> L2=mfns[2] -> L1=mfns[3]; pinned L4 in CR3. Data frames from mfns[8:]."""
    l4, l3, l2, l1 = mfns[:4]
    assert pin(hv, domid, 4, l4) == 0
    assert upd(hv, domid, [(pt_maddr(l4, 0), make_pte(l3, RW))]) == 0
    assert upd(hv, domid, [(pt_maddr(l3, 1), make_pte(l2, RW))]) == 0
    assert upd(hv, domid, [(pt_maddr(l2, 0), make_pte(l1, RW))]) == 0
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["NEW_BASEPTR"], l4)], 1, {}) == 0
    return l4, l3, l2, l1


def test_linking_tables_validates_their_types_top_down(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    types = [PageType(int(hv.memory.page_type[m])) for m in (l4, l3, l2, l1)]
    assert types == [PageType.L4, PageType.L3, PageType.L2, PageType.L1]
    assert hv.memory.type_count[l4] == 2   # the pin and CR3


def test_pinning_twice_fails_with_einval_and_changes_nothing(guest):
    hv, domid, mfns = guest
    assert pin(hv, domid, 4, mfns[0]) == 0
    before = snapshot(hv)
    assert pin(hv, domid, 4, mfns[0]) == C.EINVAL
    assert snapshot(hv) == before
    assert "pinned" in direct.explain(hv)


def test_writable_mapping_of_a_page_table_frame_is_refused(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    before = snapshot(hv)
    out = {}
    assert upd(hv, domid, [(pt_maddr(l1, 5), make_pte(l2, RW))], out) == C.EINVAL
    assert out["done"] == 0 and "read-only" in out["reason"]
    assert snapshot(hv) == before
    # read-only is fine
    assert upd(hv, domid, [(pt_maddr(l1, 5), make_pte(l2, RO))]) == 0


def test_a_writably_mapped_frame_cannot_become_a_page_table(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    x = mfns[10]
    assert upd(hv, domid, [(pt_maddr(l1, 0), make_pte(x, RW))]) == 0
    assert hv.memory.page_type[x] == PageType.WRITABLE and hv.memory.type_count[x] == 1
    before = snapshot(hv)
    assert upd(hv, domid, [(pt_maddr(l2, 1), make_pte(x, RW))]) == C.EINVAL
    assert snapshot(hv) == before
    # drop the writable mapping: type_count 0, so the type may change
    assert upd(hv, domid, [(pt_maddr(l1, 0), 0)]) == 0
    assert upd(hv, domid, [(pt_maddr(l2, 1), make_pte(x, RW))]) == 0
    assert hv.memory.page_type[x] == PageType.L1


def dom0_l1(hv):
    """A dom0 frame pinned as an L1 table: dom0's window for mapping guest frames (privcmd)."""
    l1 = int(hv.domains[0].p2m[40])
    assert pin(hv, 0, 1, l1) == 0
    return l1


def test_mapping_another_domains_frame_is_refused_without_foreigndom(guest):
    """Xen 3.1 mm.c mod_l1_entry: get_page_from_l1e(nl1e, FOREIGNDOM), and FOREIGNDOM is the caller
    unless foreigndom names another domain; get_page() checks the owner exactly (dom0 too)."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    dom0_frame = int(hv.domains[0].p2m[5])
    before = snapshot(hv)
    assert upd(hv, domid, [(pt_maddr(l1, 3), make_pte(dom0_frame, RO))]) == C.EINVAL
    assert snapshot(hv) == before
    xen_frame = 3   # Xen's own frames are never mappable by a guest
    assert upd(hv, domid, [(pt_maddr(l1, 3), make_pte(xen_frame, RO))]) == C.EINVAL
    # dom0 too: privilege does not let it map a domU frame without naming the domU in foreigndom
    w = dom0_l1(hv)
    assert hv.hypercall(0, "mmu_update", [(pt_maddr(w, 0), make_pte(mfns[20], RO))], 1, {}) == C.EINVAL
    assert hv.hypercall(0, "mmu_update", [(pt_maddr(w, 0), make_pte(mfns[20], RO))], 1, {}, domid) == 0
    assert hv.memory.tot_count[mfns[20]] == 1 and hv.memory.table(w)[0] == make_pte(mfns[20], RO)


def test_the_page_table_edited_must_be_the_callers_own_as_in_do_mmu_update(guest):
    """do_mmu_update MMU_NORMAL_PT_UPDATE: get_page_from_pagenr(mfn, current->domain) -- the table
    being edited belongs to the caller; foreigndom does not hand the request to the domU."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    before = snapshot(hv)
    out = {}
    assert hv.hypercall(0, "mmu_update", [(pt_maddr(l1, 4), make_pte(mfns[20], RO))], 1, out, domid) == C.EINVAL
    assert snapshot(hv) == before and "another domain" in out["reason"]


def test_foreigndom_follows_set_foreigndom(guest):
    """set_foreigndom (Xen 3.1): naming yourself, an unknown domain, or (unprivileged) anything but
    DOMID_IO fails, and do_mmu_update returns -ESRCH before reading any request."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    req = [(pt_maddr(l1, 4), make_pte(mfns[20], RO))]
    assert hv.hypercall(domid, "mmu_update", req, 1, {}, domid) == C.ESRCH      # itself
    assert hv.hypercall(domid, "mmu_update", req, 1, {}, 0) == C.ESRCH          # unprivileged, not DOMID_IO
    assert hv.hypercall(0, "mmu_update", req, 1, {}, 0) == C.ESRCH              # dom0 naming itself
    assert hv.hypercall(0, "mmu_update", req, 1, {}, 999) == C.ESRCH            # no such domain
    assert hv.hypercall(domid, "mmu_update", [], 0, {}, C.DOMID_IO) == 0        # DOMID_IO is allowed...
    assert hv.hypercall(domid, "mmu_update", req, 1, {}, C.DOMID_IO) == C.EINVAL  # ...but owns no RAM frame
    assert hv.hypercall(domid, "mmu_update", req, 1, {}, C.DOMID_SELF) == 0


def test_machphys_update_targets_foreigndoms_frame(guest):
    """MMU_MACHPHYS_UPDATE: get_page_from_pagenr(mfn, FOREIGNDOM) -- dom0 sets a domU's M2P entry by
    naming it (as xc_domain_restore does); without foreigndom the frame must be the caller's."""
    hv, domid, mfns = guest
    ptr = (mfns[30] << 12) | direct.MMU_MACHPHYS_UPDATE
    assert hv.hypercall(0, "mmu_update", [(ptr, 30)], 1, {}) == C.EINVAL
    assert hv.hypercall(0, "mmu_update", [(ptr, 30)], 1, {}, domid) == 0
    assert pv_state(hv).m2p[mfns[30]] == 30


def test_a_bad_entry_mid_batch_reports_done_and_keeps_the_earlier_ones(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    reqs = [(pt_maddr(l1, i), make_pte(mfns[20 + i], RW)) for i in range(5)]
    reqs[3] = (pt_maddr(l1, 3), make_pte(l2, RW))   # bad: RW mapping of a page table
    out = {}
    assert upd(hv, domid, reqs, out) == C.EINVAL
    assert out["done"] == 3
    words = hv.memory.table(l1)
    assert all(words[i] != 0 for i in range(3)) and words[3] == 0 and words[4] == 0


def test_malformed_requests_get_xen_error_codes(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    assert upd(hv, domid, [(pt_maddr(l1, 0) | 3, 0)]) == C.ENOSYS           # unknown command / unaligned ptr
    assert upd(hv, domid, [(pt_maddr(hv.memory.total_frames + 5, 0), 0)]) == C.EINVAL   # frame out of range
    assert upd(hv, domid, [("junk", None)]) == C.EINVAL
    assert upd(hv, domid, [(1, 2, 3)]) == C.EINVAL
    assert hv.hypercall(domid, "update_va_mapping", 0x0000_8000_0000_0000, 0, 0) == C.EINVAL   # not canonical
    assert hv.hypercall(domid, "mmuext_op", [(99, 0)], 1, {}) == C.ENOSYS
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["INVLPG_LOCAL"], 1 << 60)], 1, {}) == C.EINVAL
    assert hv.hypercall(domid, "update_va_mapping", 0x1000, 0, 7) == C.EINVAL   # no L1 maps 0x1000


def test_disallowed_flags_per_level(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    assert upd(hv, domid, [(pt_maddr(l2, 2), make_pte(mfns[30], RW | PTE_PS))]) == C.EINVAL   # no PV superpages
    assert upd(hv, domid, [(pt_maddr(l4, 2), make_pte(mfns[31], RW | PTE_PWT))]) == C.EINVAL
    assert upd(hv, domid, [(pt_maddr(l1, 2), make_pte(mfns[32], RW | PTE_G))]) == 0   # G is allowed in an L1


def test_unpinning_the_live_cr3_table_succeeds_as_in_xen_3_1_do_mmuext_op(guest):
    """Xen 3.1 mm.c do_mmuext_op MMUEXT_UNPIN_TABLE has no CR3 check: new_guest_cr3 took its own
    type reference (get_page_and_type_from_pagenr(mfn, PGT_root_page_table)), so the unpin
    succeeds and the tree stays validated until CR3 moves (put_page_and_type of the old base)."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["UNPIN_TABLE"], l4)], 1, {}) == 0
    assert l4 not in pv_state(hv).pinned
    assert hv.memory.page_type[l4] == PageType.L4 and hv.memory.type_count[l4] == 1   # CR3's reference
    assert all(hv.memory.type_count[m] == 1 for m in (l3, l2, l1))                    # still validated
    assert direct.audit(hv, domid) == []
    # a second unpin: not pinned any more -> -EINVAL ("Mfn not pinned")
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["UNPIN_TABLE"], l4)], 1, {}) == C.EINVAL
    # CR3 moves: the last type reference goes and the tree is devalidated
    other = mfns[50]
    assert pin(hv, domid, 4, other) == 0
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["NEW_BASEPTR"], other)], 1, {}) == 0
    assert all(hv.memory.type_count[m] == 0 for m in (l4, l3, l2, l1))


def test_unpinning_after_switching_devalidates_the_tree(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    assert upd(hv, domid, [(pt_maddr(l1, 0), make_pte(mfns[40], RW))]) == 0
    other = mfns[50]
    assert pin(hv, domid, 4, other) == 0
    assert hv.hypercall(domid, "mmuext_op", [(MMUEXT["NEW_BASEPTR"], other), (MMUEXT["UNPIN_TABLE"], l4)], 2, {}) == 0
    assert all(hv.memory.type_count[m] == 0 for m in (l4, l3, l2, l1, mfns[40]))
    assert hv.memory.tot_count[mfns[40]] == 0
    # now the old L1 may be mapped writable again
    assert upd(hv, domid, [(pt_maddr(l4, 0), 0)]) == 0


def test_update_va_mapping_changes_the_l1_entry_of_the_address(guest):
    hv, domid, mfns = guest
    build_chain(hv, domid, mfns)
    va = (1 << 30) | (7 << 12)     # L4 0, L3 1, L2 0, L1 7
    assert hv.hypercall(domid, "update_va_mapping", va, make_pte(mfns[44], RW), direct.UVMF_INVLPG) == 0
    assert hv.memory.table(mfns[3])[7] == make_pte(mfns[44], RW)
    assert hv.hypercall(domid, "update_va_mapping", 5 << 39, make_pte(mfns[44], RW), 0) == C.EINVAL  # no L1 there


def test_multicall_writes_each_result_and_refuses_nesting(guest):
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    out = {}
    entries = [("mmu_update", ([(pt_maddr(l1, 0), make_pte(mfns[20], RW))], 1, {})),
               ("mmu_update", ([(pt_maddr(l1, 1), make_pte(l2, RW))], 1, {})),
               ("multicall", ([], 0, {})),
               ("mmu_update", ([(pt_maddr(l1, 2), make_pte(mfns[21], RW))], 1, {})),
               ("domctl", (1,)),
               ("no_such_call", ())]
    assert hv.hypercall(domid, "multicall", entries, len(entries), out) == 0
    assert out["results"] == [0, C.EINVAL, C.EINVAL, 0, C.EPERM, C.ENOSYS]
    assert hv.memory.table(l1)[2] != 0


def test_bulk_apply_matches_one_request_at_a_time():
    results = []
    for bulk in (True, False):
        k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
        hv, domid, mfns = k.hv, k.domid, k.p2m.astype(int).tolist()
        l4, l3, l2, l1 = build_chain(hv, domid, mfns)
        rng = np.random.default_rng(3)
        idx = rng.integers(0, 512, 600)
        tgt = rng.choice([*mfns[8:300], l2, l3, 10], 600)
        flags = rng.choice([RW, RO, 0], 600)
        ptrs = [pt_maddr(l1, i) for i in idx]
        vals = [make_pte(t, f) for t, f in zip(tgt, flags)]
        if bulk:
            r = apply_updates(hv, domid, ptrs, vals, batch_size=32)
            res = r.results.tolist()
            assert r.hypercalls == 19 and r.batch_sizes[-1] == 600 - 18 * 32
        else:
            res = [upd(hv, domid, [(p, v)]) for p, v in zip(ptrs, vals)]
        results.append((res, snapshot(hv)[:4]))
    assert results[0] == results[1]
    assert any(r < 0 for r in results[0][0])


def test_pinning_marks_the_page_dirty_for_migration(guest):
    hv, domid, mfns = guest
    dom = hv.domains[domid]
    dom.dirty_bitmap = np.zeros(dom.p2m.size, bool)
    assert pin(hv, domid, 4, mfns[0]) == 0
    assert dom.dirty_bitmap[0]


def test_a_table_cannot_map_itself_writable_while_being_pinned(guest):
    hv, domid, mfns = guest
    x = mfns[5]
    assert upd(hv, domid, [(pt_maddr(x, 0), make_pte(x, RW))]) == 0    # a plain write: x is not a table yet
    before = snapshot(hv)
    assert pin(hv, domid, 1, x) == C.EINVAL
    assert snapshot(hv) == before
    assert upd(hv, domid, [(pt_maddr(x, 0), make_pte(x, RO))]) == 0
    assert pin(hv, domid, 1, x) == 0                                     # a read-only self-map is fine
    assert direct.audit(hv, domid) == []


from hypothesis import given, settings
from hypothesis import strategies as st

junk = st.one_of(st.none(), st.integers(-2**70, 2**70), st.text(max_size=3), st.floats(allow_nan=True),
                 st.lists(st.integers(-5, 2**66), max_size=3), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                 st.lists(st.tuples(st.integers(-5, 2**66), st.integers(-5, 2**66)), max_size=3))


@settings(max_examples=200)
@given(st.sampled_from(["mmu_update", "mmuext_op", "update_va_mapping", "multicall"]), st.lists(junk, max_size=4))
def test_garbage_arguments_get_an_errno_never_an_exception(name, args):
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    rc = k.hv.hypercall(k.domid, name, *args)
    assert isinstance(rc, int) and rc <= 0 or name == "multicall"


# --- linear page tables: Xen 3.1 mm.c define_get_linear_pagetable (get_l2/l3/l4_linear_pagetable) ---

def test_a_read_only_self_map_is_a_linear_page_table_and_is_accepted(guest):
    """get_l4_linear_pagetable: an L4 entry naming its own frame read-only is accepted with no
    reference taken (pfn == pde_pfn), so validating a root that maps itself works."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    counts = (int(hv.memory.type_count[l4]), int(hv.memory.tot_count[l4]))
    assert upd(hv, domid, [(pt_maddr(l4, 256), make_pte(l4, RO))]) == 0
    assert (int(hv.memory.type_count[l4]), int(hv.memory.tot_count[l4])) == counts
    assert direct.audit(hv, domid) == []
    assert upd(hv, domid, [(pt_maddr(l4, 256), 0)]) == 0          # put_page_from_l4e drops nothing either
    assert (int(hv.memory.type_count[l4]), int(hv.memory.tot_count[l4])) == counts
    # a fresh root whose words already hold a read-only self-map validates (alloc_l4_table)
    x = mfns[60]
    assert upd(hv, domid, [(pt_maddr(x, 256), make_pte(x, RO))]) == 0   # not a table yet: a plain write
    assert pin(hv, domid, 4, x) == 0
    assert hv.memory.page_type[x] == PageType.L4 and hv.memory.type_count[x] == 1
    assert direct.audit(hv, domid) == []


def test_a_writable_linear_entry_is_refused(guest):
    """get_lN_linear_pagetable: "Attempt to create linear p.t. with write perms" -> -EINVAL,
    or the guest would get write access to its own PTEs."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    before = snapshot(hv)
    out = {}
    assert upd(hv, domid, [(pt_maddr(l4, 256), make_pte(l4, RW))], out) == C.EINVAL
    assert "linear" in out["reason"] and "read-only" in out["reason"]
    assert snapshot(hv) == before
    assert upd(hv, domid, [(pt_maddr(l2, 7), make_pte(l2, RW))]) == C.EINVAL     # same at L2
    x = mfns[60]
    assert upd(hv, domid, [(pt_maddr(x, 256), make_pte(x, RW))]) == 0
    before = snapshot(hv)
    assert pin(hv, domid, 4, x) == C.EINVAL                                      # and inside validation
    assert snapshot(hv) == before


def test_a_read_only_linear_entry_to_another_validated_table_takes_a_type_reference(guest):
    """get_l2_linear_pagetable with pfn != pde_pfn: get_page_from_pagenr, then the target must be an
    already-validated table of the same level; its type count goes up by one."""
    hv, domid, mfns = guest
    l4, l3, l2, l1 = build_chain(hv, domid, mfns)
    other = mfns[61]
    assert pin(hv, domid, 2, other) == 0                                        # a validated L2
    tc = int(hv.memory.type_count[other])
    assert upd(hv, domid, [(pt_maddr(l2, 9), make_pte(other, RO))]) == 0
    assert hv.memory.type_count[other] == tc + 1
    assert direct.audit(hv, domid) == []
    assert upd(hv, domid, [(pt_maddr(l2, 9), 0)]) == 0
    assert hv.memory.type_count[other] == tc
    # a frame that is no table at all is still refused (get_page_type(PGT_l1) fails, and it is no L2)
    data = mfns[62]
    assert upd(hv, domid, [(pt_maddr(l1, 0), make_pte(data, RW))]) == 0
    assert upd(hv, domid, [(pt_maddr(l2, 9), make_pte(data, RO))]) == C.EINVAL
