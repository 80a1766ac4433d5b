"""Shadow paging: traps on guest PTE writes, lazy builds, resyncs, a small shadow cache."""

import numpy as np

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.mmu import PTE_A, PTE_D, va_indices

VA = 0x4000_0000


def kernel(**kw):
    k = boot_kernel("shadow", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, **kw)
    pid = k.spawn()
    k.map(pid, VA, 16)
    return k, pid


def test_shadows_are_built_lazily_on_the_first_miss():
    k, pid = kernel()
    sh = k.shadow
    assert sh.counters["builds"] == 1            # only the root, at the CR3 load
    mfn, fault = k.translate(VA)
    assert fault is None and mfn == k.p2m[k.mappings()[VA >> 12]]
    assert sh.counters["shadow_faults"] == 1 and sh.counters["builds"] == 4
    k.translate(VA + 4096)                        # same L1: already shadowed (whole L1 filled)
    assert sh.counters["shadow_faults"] == 1


def test_writes_to_a_shadowed_table_trap_and_propagate():
    k, pid = kernel()
    k.translate(VA)
    traps = k.shadow.counters["traps"]
    k.unmap(pid, VA, 1)
    assert k.shadow.counters["traps"] == traps + 1
    assert k.translate(VA)[1] is not None         # the shadow saw the unmap
    k.map(pid, VA + 100 * 4096, 1)                # new L1 entry in a shadowed table: trap as well
    assert k.shadow.counters["traps"] == traps + 2


def test_unshadowed_tables_are_not_write_protected():
    k, pid = kernel()
    traps = k.shadow.counters["traps"]
    k.map(pid, VA + (5 << 30), 8)                 # new tables nobody has shadowed yet
    assert k.shadow.counters["traps"] == traps


def test_xen_sets_guest_a_and_d_at_shadow_fault_time_as_in_sh_propagate():
    """Xen 3.1 shadow/multi.c _sh_propagate: a shadow L1e is not present until the guest entry's
    A bit is set and read-only until its D bit is set, so the first read and the first write
    each take a shadow fault, at which Xen sets the guest's A (and D) bits. Nothing is copied
    back from the shadow afterwards."""
    from vmlab.hardware.mmu import PTE_RW
    k, pid = kernel()
    va = VA + 5 * 4096
    l1 = int(k.p2m[k.current.tables[(1, (VA >> 21))]])
    i = va_indices(va)[3]
    k.mem.table(l1)[i] &= np.uint64(~(PTE_A | PTE_D) & ((1 << 64) - 1))   # a fresh guest entry
    sh = k.shadow
    f0 = sh.counters["shadow_faults"]
    assert k.translate(va)[1] is None
    gpte = int(k.mem.table(l1)[i])
    assert gpte & PTE_A and not gpte & PTE_D and gpte & PTE_RW
    smfn = sh.current.shadow_of[k.current.tables[(1, (VA >> 21))]][1]
    spte = int(k.mem.table(smfn)[i])
    assert spte & 1 and not spte & PTE_RW           # guest D clear: the shadow maps it read-only
    f1 = sh.counters["shadow_faults"]
    assert f1 > f0
    assert k.translate(va, write=True)[1] is None     # the write faults on the read-only shadow...
    assert sh.counters["shadow_faults"] == f1 + 1
    assert int(k.mem.table(l1)[i]) & PTE_D            # ...and Xen sets the guest's D bit
    assert int(k.mem.table(smfn)[i]) & PTE_RW
    assert "ad_syncs" not in sh.counters


def test_guest_sees_accessed_and_dirty_bits():
    k, pid = kernel()
    k.translate(VA + 3 * 4096, write=True)
    l1 = k.current.tables[(1, (VA >> 21))]
    gpte = int(k.mem.table(int(k.p2m[l1]))[va_indices(VA + 3 * 4096)[3]])
    assert gpte & PTE_A and gpte & PTE_D


def test_the_shadow_cache_keeps_recent_address_spaces_and_drops_old_ones():
    k, pid = kernel(shadow_cache=2)
    a = k.fork(pid)
    b = k.fork(pid)
    k.switch_to(a)
    builds = k.shadow.counters["builds"]
    k.switch_to(pid)                              # pid's shadow is cached: no rebuild
    assert k.shadow.counters["builds"] == builds
    k.switch_to(b)                                # third address space: evicts the LRU one (a)
    assert k.shadow.counters["drops"] >= 1 and len(k.shadow.trees) == 2
    k.switch_to(a)
    assert k.shadow.counters["builds"] > builds


def test_out_of_sync_l1s_trap_once_and_resync_on_flush():
    k, pid = kernel(oos=True)
    k.translate(VA)
    t0 = k.shadow.counters["traps"]
    k.unmap(pid, VA, 3)                           # three writes to one L1; unmap flushes the TLB
    assert k.shadow.counters["traps"] == t0 + 1
    assert k.shadow.counters["resyncs"] == 1
    assert k.translate(VA)[1] is not None and k.translate(VA + 3 * 4096)[1] is None


def test_fork_of_a_touched_space_traps_once_per_parent_pte():
    k, pid = kernel()
    k.access(VA + np.arange(16) * 4096)
    traps = k.shadow.counters["traps"]
    k.fork(pid)
    assert k.shadow.counters["traps"] - traps == 16   # ptep_set_wrprotect on each parent PTE


def test_a_one_entry_cache_rebuilds_on_every_switch():
    k, pid = kernel(shadow_cache=1)
    other = k.fork(pid)
    b0 = k.shadow.counters["builds"]
    for target in (other, pid, other):
        k.switch_to(target)
    assert len(k.shadow.trees) == 1 and k.shadow.counters["builds"] == b0 + 3
    assert k.translate(VA)[1] is None
