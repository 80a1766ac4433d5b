"""The nested scheme (EPT/NPT): guest writes are plain stores; a miss is a 2D walk."""

import numpy as np

from vmlab.guest.kernel import boot_kernel

VA = 0x4000_0000


def test_nested_page_table_writes_never_exit_and_a_cold_miss_is_24_references():
    k = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 8)
    assert k.stats["exits"] == 0 and k.stats["hypercalls"] == 0
    before = k.stats["walk_refs"]
    k.translate(VA)
    assert k.stats["walk_refs"] - before == 24


def test_walk_caches_make_misses_sequential_and_cheaper():
    plain = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    cached = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, nested_tlb=16, pwc=8)
    refs = []
    for k in (plain, cached):
        pid = k.spawn()
        k.map(pid, VA, 64)
        refs.append(k.access(VA + 4096 * np.arange(64))["walk_refs"])
    assert refs[1] < refs[0]
