"""Xen's own HVM exit path is the default; KVM's/kvmtool's stays as a labelled comparison.

Xen 3.4 xen/arch/x86/hvm/vmx/vmx.c `vmx_vmexit_handler`: EXIT_REASON_IO_INSTRUCTION ->
`handle_mmio`; EXIT_REASON_EPT_VIOLATION -> `ept_handle_violation`, which for a
`p2m_mmio_dm` page calls `handle_mmio`; `handle_mmio` (hvm/io.c) sends an ioreq to
qemu-dm in dom0 through the shared ioreq page and an event channel. KVM instead maps
MMIO with a misconfigured EPT entry (EXIT_REASON_EPT_MISCONFIG, `handle_ept_misconfig`)
and returns to user space with KVM_EXIT_IO / KVM_EXIT_MMIO.
"""

import pytest

from vmlab.costs import preset
from vmlab.execution import EXIT_TABLE, ExitReason, Op, OpStream, run_hvm, run_loop, workload
from vmlab.execution.exits import KVM_EXIT_TABLE, handling_cycles
from vmlab.io.ioreq import ROUND_TRIP

P4, KVM = preset("p4_vtx_2006"), preset("modern_kvm")
IO = OpStream.build("io", [Op.PORT_IO, Op.MMIO, Op.CPUID], value=[1, 1, 0])


def test_the_default_exit_table_names_xens_handlers_not_kvms():
    assert "handle_mmio" in EXIT_TABLE[ExitReason.IO_INSTRUCTION].handler
    assert "ept_handle_violation" in EXIT_TABLE[ExitReason.EPT_VIOLATION].handler
    assert "handle_mmio" in EXIT_TABLE[ExitReason.EPT_VIOLATION].handler
    assert ExitReason.EPT_MISCONFIG not in EXIT_TABLE
    assert EXIT_TABLE[ExitReason.CPUID].handler == "vmx_do_cpuid"
    assert EXIT_TABLE[ExitReason.VMCALL].handler == "hvm_do_hypercall"
    assert not any("kvm" in h.handler.lower() or "KVM_EXIT" in h.what for h in EXIT_TABLE.values())
    assert EXIT_TABLE[ExitReason.IO_INSTRUCTION].where == "qemu-dm in dom0 (ioreq)"
    assert KVM_EXIT_TABLE[ExitReason.EPT_MISCONFIG].handler.startswith("handle_ept_misconfig")


def test_mmio_under_ept_is_an_ept_violation_on_p2m_mmio_dm_in_xen_and_a_misconfig_in_kvm():
    assert run_hvm(IO, KVM, paging="nested").exits == {"IO_INSTRUCTION": 1, "EPT_VIOLATION": 1, "CPUID": 1}
    assert run_hvm(IO, KVM, paging="nested", hypervisor="kvm").exits == {"IO_INSTRUCTION": 1, "EPT_MISCONFIG": 1,
                                                                          "CPUID": 1}


def test_each_emulated_access_is_a_costed_ioreq_round_trip_through_qemu_dm():
    parts = handling_cycles(Op.PORT_IO, "nested", P4)
    hops = [what.split(":")[0] for _, what, _ in parts]
    assert hops == [s.hop for s in ROUND_TRIP]                 # guest->Xen, Xen->qemu-dm, qemu-dm, qemu-dm->Xen, Xen->guest
    assert parts[3][2] == P4.hypercall_roundtrip_cycles        # qemu-dm's EVTCHNOP_send is a hypercall
    assert sum(p[2] for p in parts) == pytest.approx(P4.io_exit_to_device_model_cycles)
    r = run_hvm(IO, P4, paging="nested")
    assert r.counts["ioreqs"] == 2


def test_xens_literal_loop_sends_one_ioreq_per_emulated_access():
    loop = run_loop(IO, P4, paging="nested")
    assert loop.ioreqs == 2 and loop.exits == {"IO_INSTRUCTION": 1, "EPT_VIOLATION": 1, "CPUID": 1}
    assert [h for h in loop.ioreq_hops[:5]] == [s.hop for s in ROUND_TRIP]


@pytest.mark.parametrize("hypervisor", ["xen", "kvm"])
def test_vectorized_hvm_equals_the_literal_loop_for_xen_and_for_kvmtool(hypervisor):
    s = workload("forkwait", 5)
    for paging in ("shadow", "nested"):
        loop = run_loop(s, P4, paging=paging, hypervisor=hypervisor)
        r = run_hvm(s, P4, paging=paging, hypervisor=hypervisor)
        assert r.total_cycles == pytest.approx(loop.total_cycles) and r.exits == loop.exits
