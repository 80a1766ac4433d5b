"""The per-hypervisor I/O system: created once, its hypercalls registered as closures, the scheduler."""

from vmlab.hypervisor import constants as C
from vmlab.io.grant_table import GNTMAP_host_map, GNTTABOP_map_grant_ref
from vmlab.io.system import frame_access, io_system, new_io_machine


def test_io_system_is_created_once_per_hypervisor_and_registers_hypercalls_20_and_32(machine):
    hv, d, io = machine
    assert io_system(hv) is io
    assert hv.hypercalls["grant_table_op"].number == 20 and hv.hypercalls["event_channel_op"].number == 32
    hv2, _ = new_io_machine()
    assert io_system(hv2) is not io


def test_frame_access_follows_mapped_grants(machine):
    hv, d, io = machine
    mfn = io.mfn(d, io.alloc_pages(d, 1)[0])
    ref = io.grants.table(d).grant_foreign_access(0, mfn)
    assert frame_access(hv, 0, mfn) == C.EPERM and frame_access(hv, d, mfn, write=True) == 0
    hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ref, "dom": d, "flags": GNTMAP_host_map}], 1, {})
    assert frame_access(hv, 0, mfn, write=True) == 0


def test_releasing_a_domain_leaves_nothing_that_names_it(vbd):
    hv, d, io, dev = vbd
    assert io.leftovers(d)["devices"] == 1
    io.release_domain(d)
    assert not any(io.leftovers(d).values())
    io.check()


def test_a_quiet_system_runs_no_rounds(machine):
    hv, d, io = machine
    io.run()
    assert io.run() == 0
