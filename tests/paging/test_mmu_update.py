"""mmu_update and update_va_mapping (Xen's do_mmu_update, do_update_va_mapping)."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.mmu import PTE_P, PTE_US, make_pte
from vmlab.hypervisor import constants as C
from vmlab.paging.pv_types import pt_maddr

VA = 0x4000_0000


def test_a_domu_cannot_name_another_domain_in_foreigndom():
    """Xen 3.1 set_foreigndom: an unprivileged caller may name only DOMID_IO; do_mmu_update -> -ESRCH."""
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    assert k.hv.hypercall(k.domid, "mmu_update", [(pt_maddr(int(k.p2m[1]), 0), 0)], 1, {}, 0) == C.ESRCH


def test_update_va_mapping_rewrites_the_l1_entry_of_a_mapped_address():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 2)
    k.flush()
    other = int(k.p2m[k.mappings(pid)[(VA >> 12) + 1]])
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA, make_pte(other, PTE_P | PTE_US), 0) == 0
    assert k.translate(VA) == (other, None)
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA + (1 << 30), 0, 0) == C.EINVAL   # no L1 there


def test_update_va_mapping_reads_higher_flag_bits_as_a_vcpumask_pointer():
    """Xen 3.1 do_update_va_mapping: flags & ~UVMF_FLUSHTYPE_MASK is UVMF_LOCAL (0), UVMF_ALL (4), or
    else a pointer to a vCPU bitmap (UVMF_MULTI) read with get_user -- -EFAULT if unreadable, after
    the entry was already updated. With flush type UVMF_NONE the high bits are not looked at."""
    from vmlab.paging.direct import UVMF_INVLPG, UVMF_TLB_FLUSH, pv_state
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 2)
    k.flush()
    other = int(k.p2m[k.mappings(pid)[(VA >> 12) + 1]])
    flushes = pv_state(k.hv).tlb_flushes
    n0 = flushes.get(k.domid, 0)
    mask_ptr = VA + 0x1000 + 0x40   # a mapped guest address holding the bitmap
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA, make_pte(other, PTE_P | PTE_US),
                          UVMF_INVLPG | mask_ptr) == 0
    assert flushes.get(k.domid, 0) == n0 + 1
    unmapped = VA + (64 << 12)
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA, 0, UVMF_TLB_FLUSH | unmapped) == C.EFAULT
    assert k.translate(VA)[1] is not None                                  # the update itself was done
    assert k.hv.hypercall(k.domid, "update_va_mapping", VA, make_pte(other, PTE_P | PTE_US), unmapped) == 0
