"""mmu_update and update_va_mapping (Xen's do_mmu_update, do_update_va_mapping)."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.mmu import PTE_P, PTE_US, make_pte
from vmlab.hypervisor import constants as C
from vmlab.paging.pv_types import pt_maddr

VA = 0x4000_0000


def test_a_domu_cannot_update_another_domains_tables():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    assert k.hv.hypercall(k.domid, "mmu_update", [(pt_maddr(int(k.p2m[1]), 0), 0)], 1, {}, 0) == C.EPERM


def test_update_va_mapping_rewrites_the_l1_entry_of_a_mapped_address():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 2)
    k.flush()
    other = int(k.p2m[k.mappings(pid)[(VA >> 12) + 1]])
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA, make_pte(other, PTE_P | PTE_US), 0) == 0
    assert k.translate(VA) == (other, None)
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA + (1 << 30), 0, 0) == C.EINVAL   # no L1 there
