"""The PV scheme: every table change is an mmu_update / mmuext_op through Linux's multicall buffer."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.memory import PageType

VA = 0x4000_0000


def test_pv_pins_the_pgd_and_loads_cr3_with_new_baseptr():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    root = int(k.p2m[k.procs[pid].root])
    assert k.mem.page_type[root] == PageType.L4 and k.mem.type_count[root] >= 1   # pinned and in CR3
    assert k.counters()["flush_reasons"] == {"cr3": 1}   # PIN_L4_TABLE + NEW_BASEPTR in one multicall


def test_pv_leaf_writes_are_queued_until_a_flush():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 2)
    assert k.batch.queued == 5 and k.stats["pt_writes"] == 0
    k.flush()
    assert k.batch.queued == 0 and k.stats["pt_writes"] == 5
