"""grant_table_op (hypercall 20): the sub-operation table (xen/common/grant_table.c, do_grant_table_op)."""

from vmlab.hypervisor import constants as C
from vmlab.io.grant_ops import GNTTABOP_TABLE
from vmlab.io.grant_table import (GNTST_general_error, GNTTABOP_copy, GNTTABOP_map_grant_ref, GNTTABOP_query_size,
                                  GNTTABOP_setup_table, GNTTABOP_transfer, GNTTABOP_unmap_grant_ref)


def test_every_modelled_sub_operation_is_one_row_of_the_table():
    assert set(GNTTABOP_TABLE) == {GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref, GNTTABOP_setup_table,
                                   GNTTABOP_transfer, GNTTABOP_copy, GNTTABOP_query_size}


def test_an_unreadable_op_list_is_efault_and_a_count_beyond_it_einval(machine):
    hv, d, io = machine
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, ["not an op"], 1, {}) == C.EFAULT
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, [{}], 2, {}) == C.EINVAL
    assert hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, [{}], -1, {}) == C.EINVAL


def test_page_transfer_is_not_modelled_and_each_op_gets_a_general_error(machine):
    hv, d, io = machine
    out = {}
    assert hv.hypercall(d, "grant_table_op", GNTTABOP_transfer, [{}, {}], 2, out) == 0
    assert out["status"] == [GNTST_general_error] * 2


def test_the_handler_holds_its_own_hypervisors_tables(machine):
    """Registered as a closure: each hypervisor's grant_table_op sees only its own tables."""
    from vmlab.io.system import io_system, new_io_machine
    hv, d, io = machine
    hv2, d2 = new_io_machine()
    h1, h2 = hv.hypercalls["grant_table_op"].handler, hv2.hypercalls["grant_table_op"].handler
    assert h1 is not h2
    out = {}
    hv2.hypercall(0, "grant_table_op", GNTTABOP_setup_table, [{"dom": d2, "nr_frames": 8}], 1, out)
    assert io_system(hv2).grants.table(d2).nr_frames == 8 and io.grants.table(d).nr_frames != 8
