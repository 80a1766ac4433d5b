"""Linux's lazy MMU mode (arch/x86/xen/multicalls.c): the multicall buffer in front of Xen."""

import numpy as np
import pytest

from vmlab.guest.kernel import boot_kernel
from vmlab.guest.lazy_mmu import MC_BATCH, GuestKernelBug, LazyMMU
from vmlab.paging.direct import MMUEXT, pt_maddr

VA = 0x4000_0000


def pv(**kw):
    return boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, **kw)


def test_a_full_buffer_flushes_as_one_multicall_and_a_single_entry_as_a_plain_hypercall():
    k = pv()
    pid = k.spawn()
    k.map(pid, VA, 1)            # 3 links + 1 leaf queued, nothing sent yet
    assert k.batch.queued == 4 and k.batch.mc["batches"] == 1   # only the spawn's CR3 flush so far
    k.flush()
    ev = [e for e in k.hv.trace.events if e.kind == "hypercall" and e.domid == k.domid]
    assert [e.detail for e in ev[-2:]] == ["multicall", "multicall"] and ev[-1].value == 4
    k.batch.queue_ext(MMUEXT["TLB_FLUSH_LOCAL"], 0)
    k.batch.flush("tlb_flush")
    assert k.hv.trace.events[-1].detail == "mmu_update" and k.batch.mc["flush_reasons"]["tlb_flush"] == 1


def test_the_buffer_holds_at_most_batch_size_entries():
    k = pv(batch_size=4)
    pid = k.spawn()
    k.map(pid, VA, 10)           # 13 entries: three full buffers sent ("slots"), one left
    assert k.batch.queued == 1 and k.batch.mc["flush_reasons"]["slots"] == 3 and MC_BATCH == 32


def test_a_refused_update_is_a_kernel_bug_not_a_silent_error():
    k = pv()
    pid = k.spawn()
    k.map(pid, VA, 1)
    k.flush()
    l1 = int(k.p2m[k.procs[pid].tables[(1, VA >> 21)]])
    buf = LazyMMU(k, 2)
    buf.queue_mmu(np.array([pt_maddr(l1, 0)]), np.array([(l1 << 12) | 7], np.uint64))   # map a table writable
    with pytest.raises(GuestKernelBug, match="refused"):
        buf.flush()


def test_mc_batch_is_labelled_with_the_kernel_it_comes_from():
    """MC_BATCH = 32 and Linux's mc stats are pvops Linux's (arch/x86/xen/multicalls.c, 2.6.23+);
    Oracle VM 2.x guests ran 2.6.18 XenLinux, which had no lazy-MMU multicall buffer."""
    import vmlab.execution.analysis as analysis
    import vmlab.guest.lazy_mmu as lazy_mmu
    assert lazy_mmu.MC_BATCH == analysis.MC_BATCH == 32
    assert "pvops" in lazy_mmu.MC_BATCH_KERNEL and "2.6.18" in lazy_mmu.MC_BATCH_KERNEL
    assert "pvops" in (lazy_mmu.__doc__ or "") and "2.6.18 XenLinux" in (lazy_mmu.__doc__ or "")
