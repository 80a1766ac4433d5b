"""Grant tables, Xen's side (xen/common/grant_table.c): a batch of maps and unmaps, op by op.

__gnttab_map_grant_ref runs once per op of a GNTTABOP_map_grant_ref batch: each op gets its
own status, a failing op changes nothing, and the ops after it still run.
"""

from vmlab.io.grant_map import GrantTables
from vmlab.io.grant_table import (GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly, GNTST_bad_gntref,
                                  GNTST_bad_handle, GNTST_okay, GNTST_permission_denied, GNTTABOP_map_grant_ref,
                                  GNTTABOP_unmap_grant_ref, GTF_reading, GTF_writing)


def test_a_batch_maps_each_op_in_order_and_a_bad_op_does_not_stop_the_rest(machine):
    hv, d, io = machine
    assert isinstance(io.grants, GrantTables)
    pfns = io.alloc_pages(d, 2)
    t = io.grants.table(d)
    a = t.grant_foreign_access(0, io.mfn(d, pfns[0]))
    b = t.grant_foreign_access(0, io.mfn(d, pfns[1]), readonly=True)
    ops = [{"ref": a, "dom": d, "flags": GNTMAP_host_map},
           {"ref": 4095 * 8, "dom": d, "flags": GNTMAP_host_map},                 # beyond the table
           {"ref": b, "dom": d, "flags": GNTMAP_host_map},                        # rw map of a ro grant
           {"ref": b, "dom": d, "flags": GNTMAP_host_map | GNTMAP_readonly}]
    out = {}
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, ops, 4, out) == 0
    assert out["status"] == [GNTST_okay, GNTST_bad_gntref, GNTST_permission_denied, GNTST_okay]
    assert out["handle"][1] == out["handle"][2] == -1 and io.grants.live_mappings(0) == 2
    assert t.flags[a] & GTF_writing and t.flags[b] & GTF_reading and not t.flags[b] & GTF_writing
    out2 = {}
    hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref,
                 [{"handle": out["handle"][0]}, {"handle": 12345}, {"handle": out["handle"][3]}], 3, out2)
    assert out2["status"] == [GNTST_okay, GNTST_bad_handle, GNTST_okay]
    assert io.grants.live_mappings(0) == 0 and not t.flags[a] & (GTF_reading | GTF_writing)
    io.check()


def test_mapping_one_frame_twice_in_a_batch_pins_it_twice(machine):
    hv, d, io = machine
    pfn = io.alloc_pages(d, 1)[0]
    mfn = io.mfn(d, pfn)
    ref = io.grants.table(d).grant_foreign_access(0, mfn)
    before = int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn])
    out = {}
    hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ref, "dom": d, "flags": GNTMAP_host_map}] * 6, 6, out)
    assert (int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn])) == (before[0] + 6, before[1] + 6)
    hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h} for h in out["handle"]], 6, {})
    assert (int(hv.memory.tot_count[mfn]), int(hv.memory.type_count[mfn])) == before
    io.check()


def test_only_a_device_map_gets_a_bus_address(machine):
    hv, d, io = machine
    pfns = io.alloc_pages(d, 2)
    t = io.grants.table(d)
    refs = [t.grant_foreign_access(0, io.mfn(d, p)) for p in pfns]
    out = {}
    hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref,
                 [{"ref": refs[0], "dom": d, "flags": GNTMAP_host_map},
                  {"ref": refs[1], "dom": d, "flags": GNTMAP_host_map | GNTMAP_device_map}], 2, out)
    assert out["dev_bus_addr"] == [0, io.mfn(d, pfns[1]) << 12]
