from vmlab.hardware.memory import PageType
from vmlab.hypervisor import constants as C
from vmlab.io.grant_table import (ENTRIES_PER_GRANT_FRAME, GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_host_map,
                                  GNTMAP_readonly, GNTST_bad_domain, GNTST_bad_gntref, GNTST_bad_handle,
                                  GNTST_general_error, GNTST_okay, GNTST_permission_denied, GNTTAB_NR_RESERVED_ENTRIES,
                                  GNTTABOP_copy, GNTTABOP_map_grant_ref, GNTTABOP_query_size, GNTTABOP_setup_table,
                                  GNTTABOP_unmap_grant_ref, GRANT_ENTRY_V1_BYTES, GTF_reading, GTF_writing,
                                  MAX_GRANT_FRAMES)
from vmlab.io.system import frame_access


def _grant(io, domid, to, pfn, readonly=False):
    mfn = io.mfn(domid, pfn)
    return io.grants.table(domid).grant_foreign_access(to, mfn, readonly=readonly), mfn


def _map(hv, caller, granter, ref, flags=GNTMAP_host_map):
    out = {}
    rc = hv.hypercall(caller, "grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ref, "dom": granter, "flags": flags}], 1, out)
    assert rc == 0
    return out["status"][0], out["handle"][0]


def test_v1_entry_is_8_bytes_so_a_frame_holds_512_entries():
    assert GRANT_ENTRY_V1_BYTES == 8 and ENTRIES_PER_GRANT_FRAME == 512


def test_grant_table_op_is_hypercall_20_and_unknown_commands_are_enosys(machine):
    hv, d, io = machine
    assert hv.hypercalls["grant_table_op"].number == 20
    assert hv.hypercall(d, 20, 99, []) == C.ENOSYS
    assert hv.hypercall(d, "grant_table_op", GNTTABOP_map_grant_ref, [], 5) == C.EINVAL


def test_first_free_ref_is_after_the_8_reserved_entries(machine):
    hv, d, io = machine
    ref, _ = _grant(io, d, 0, io.alloc_pages(d, 1)[0])
    assert ref == GNTTAB_NR_RESERVED_ENTRIES == 8


def test_grantee_maps_a_granted_frame_and_may_then_access_it(machine):
    hv, d, io = machine
    ref, mfn = _grant(io, d, 0, io.alloc_pages(d, 1)[0])
    assert frame_access(hv, 0, mfn) == C.EPERM
    st, h = _map(hv, 0, d, ref)
    assert st == GNTST_okay and frame_access(hv, 0, mfn, write=True) == 0
    assert io.grants.table(d).flags[ref] & GTF_writing
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h}], 1, {}) == 0
    assert frame_access(hv, 0, mfn) == C.EPERM
    assert not io.grants.table(d).flags[ref] & (GTF_reading | GTF_writing)


def test_domu_cannot_touch_a_frame_it_neither_owns_nor_has_mapped(two_guests):
    hv, d1, d2, io = two_guests
    other = int(hv.domains[d2].p2m[10])
    assert frame_access(hv, d1, other) == C.EPERM
    assert frame_access(hv, d1, other, write=True) == C.EPERM
    assert frame_access(hv, d1, int(hv.domains[d1].p2m[10]), write=True) == 0
    assert hv.trace.filter(kind="refused", domid=d1)[-1].detail == f"write mfn {other}"


def test_mapping_a_grant_meant_for_another_domain_is_permission_denied(two_guests):
    hv, d1, d2, io = two_guests
    ref, mfn = _grant(io, d1, 0, io.alloc_pages(d1, 1)[0])  # granted to dom0, not to d2
    assert _map(hv, d2, d1, ref)[0] == GNTST_permission_denied
    assert frame_access(hv, d2, mfn) == C.EPERM


def test_writable_map_of_a_readonly_grant_is_refused_but_a_readonly_map_works(machine):
    hv, d, io = machine
    ref, mfn = _grant(io, d, 0, io.alloc_pages(d, 1)[0], readonly=True)
    assert _map(hv, 0, d, ref)[0] == GNTST_permission_denied
    st, _ = _map(hv, 0, d, ref, GNTMAP_host_map | GNTMAP_readonly)
    assert st == GNTST_okay
    assert frame_access(hv, 0, mfn) == 0 and frame_access(hv, 0, mfn, write=True) == C.EPERM


def test_revoking_a_grant_in_use_is_refused_until_it_is_unmapped(machine):
    hv, d, io = machine
    ref, _ = _grant(io, d, 0, io.alloc_pages(d, 1)[0])
    st, h = _map(hv, 0, d, ref)
    table = io.grants.table(d)
    assert table.end_foreign_access(ref) is False
    assert table.flags[ref] & GTF_writing  # unchanged
    hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h}], 1, {})
    assert table.end_foreign_access(ref) is True
    assert _map(hv, 0, d, ref)[0] == GNTST_permission_denied  # revoked


def test_map_pins_the_frame_and_unmap_releases_it(machine):
    hv, d, io = machine
    ref, mfn = _grant(io, d, 0, io.alloc_pages(d, 1)[0])
    before = (int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn]))
    _, h = _map(hv, 0, d, ref)
    assert (int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn])) == (before[0] + 1, before[1] + 1)
    hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h}], 1, {})
    assert (int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn])) == before


def test_bad_ref_bad_domain_and_bad_handle_get_their_statuses(machine):
    hv, d, io = machine
    assert _map(hv, 0, d, 10**6)[0] == GNTST_bad_gntref
    assert _map(hv, 0, 999, 8)[0] == GNTST_bad_domain
    assert _map(hv, 0, d, 8, flags=0)[0] == GNTST_bad_gntref  # neither host_map nor device_map
    out = {}
    hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": 12345}], 1, out)
    assert out["status"] == [GNTST_bad_handle]


def test_a_grant_of_a_frame_the_granter_does_not_own_cannot_be_mapped(two_guests):
    hv, d1, d2, io = two_guests
    stolen = int(hv.domains[d2].p2m[5])
    ref = io.grants.table(d1).grant_foreign_access(0, stolen)  # the guest can write anything in its table
    assert _map(hv, 0, d1, ref)[0] == GNTST_general_error
    assert frame_access(hv, 0, stolen) == C.EPERM


def test_a_page_table_frame_is_never_mapped_writable_through_a_grant(machine):
    hv, d, io = machine
    ref, mfn = _grant(io, d, 0, io.alloc_pages(d, 1)[0])
    hv.memory.page_type[mfn] = PageType.L1
    assert _map(hv, 0, d, ref)[0] == GNTST_general_error
    assert _map(hv, 0, d, ref, GNTMAP_host_map | GNTMAP_readonly)[0] == GNTST_okay


def test_setup_table_grows_to_the_limit_and_only_dom0_sizes_another_domains_table(machine):
    hv, d, io = machine
    out = {}
    hv.hypercall(d, "grant_table_op", GNTTABOP_setup_table, [{"dom": C.DOMID_SELF, "nr_frames": 16}], 1, out)
    assert out["status"] == [GNTST_okay] and out["nr_frames"] == [16]
    hv.hypercall(d, "grant_table_op", GNTTABOP_setup_table, [{"dom": C.DOMID_SELF, "nr_frames": MAX_GRANT_FRAMES + 1}], 1, out)
    assert out["status"] == [GNTST_general_error]
    hv.hypercall(d, "grant_table_op", GNTTABOP_query_size, [{"dom": 0}], 1, out)
    assert out["status"] == [GNTST_permission_denied]
    hv.hypercall(0, "grant_table_op", GNTTABOP_query_size, [{"dom": d}], 1, out)
    assert out["nr_frames"] == [(16, MAX_GRANT_FRAMES)]


def test_a_full_table_refuses_new_grants_with_enospc(machine):
    hv, d, io = machine
    from vmlab.io.grant_table import GrantTable
    t = io.grants.tables[d] = GrantTable(d, max_frames=1, nr_frames=1)
    mfn = io.mfn(d, 100)
    refs = [t.grant_foreign_access(0, mfn) for _ in range(ENTRIES_PER_GRANT_FRAME - GNTTAB_NR_RESERVED_ENTRIES)]
    assert len(set(refs)) == 504 and min(refs) == 8
    assert t.grant_foreign_access(0, mfn) == -28


def test_grant_copy_checks_both_sides_and_moves_the_data(two_guests):
    hv, d1, d2, io = two_guests
    src_pfn, dst_pfn = io.alloc_pages(d1, 1)[0], io.alloc_pages(d2, 1)[0]
    hv.guest_write(d1, [src_pfn])
    sref, smfn = _grant(io, d1, 0, src_pfn, readonly=True)
    dref, dmfn = _grant(io, d2, 0, dst_pfn)
    op = {"source": {"ref": sref, "domid": d1, "offset": 0}, "dest": {"ref": dref, "domid": d2, "offset": 0},
          "len": 4096, "flags": GNTCOPY_source_gref | GNTCOPY_dest_gref}
    out = {}
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_copy, [op], 1, out) == 0 and out["status"] == [GNTST_okay]
    assert hv.memory.content[dmfn] == hv.memory.content[smfn] != 0
    # Copying *into* a read-only grant is refused; a raw frame number must be the caller's own.
    bad = dict(op, source=op["dest"], dest=op["source"])
    hv.hypercall(0, "grant_table_op", GNTTABOP_copy, [bad], 1, out)
    assert out["status"] == [GNTST_permission_denied]
    raw = dict(op, source={"gmfn": src_pfn, "domid": d1, "offset": 0}, flags=GNTCOPY_dest_gref)
    hv.hypercall(0, "grant_table_op", GNTTABOP_copy, [raw], 1, out)
    assert out["status"] == [GNTST_permission_denied]
    hv.hypercall(0, "grant_table_op", GNTTABOP_copy, [dict(op, len=5000)], 1, out)
    assert out["status"] == [-10]  # GNTST_bad_copy_arg
