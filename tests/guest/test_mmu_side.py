"""The MMU side of a guest kernel: translate walks one address, access runs a stream through the TLB."""

import numpy as np

from vmlab.guest.kernel import boot_kernel

VA = 0x4000_0000


def test_translate_agrees_with_the_kernels_own_mappings_under_every_scheme():
    for scheme in ("native", "pv", "shadow", "nested"):
        k = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
        pid = k.spawn()
        k.map(pid, VA, 4)
        for vpn, pfn in k.mappings(pid).items():
            assert k.translate(vpn << 12) == (int(k.p2m[pfn]), None), scheme


def test_access_charges_walk_references_per_tlb_miss_not_per_bookkeeping_walk():
    k = boot_kernel("native", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 4)
    r = k.access(VA + 4096 * np.array([0, 0, 1, 1, 2, 3, 0]))
    assert r == {"accesses": 7, "tlb_misses": 4, "walk_refs": 16, "faults": 0}
    assert k.stats["tlb_hits"] == 3
