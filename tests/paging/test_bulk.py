"""The bulk path: k updates in batches of b cost ceil(k / b) hypercalls, as Linux's xen_mc_flush issues them."""

import numpy as np

from vmlab.guest.kernel import boot_kernel
from vmlab.paging.bulk import apply_updates
from vmlab.paging.pv_types import pt_maddr

VA = 0x4000_0000


def test_batches_and_results():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 1)
    k.flush()
    l1 = int(k.p2m[k.procs[pid].tables[(1, VA >> 21)]])
    frame = int(k.p2m[200])
    ptrs = [pt_maddr(l1, s) for s in range(70)]
    r = apply_updates(k.hv, k.domid, ptrs, np.full(70, (frame << 12) | 5), batch_size=32)
    assert (r.hypercalls, r.multicalls, r.batch_sizes, r.applied) == (3, 3, (32, 32, 6), 70)
    bad = apply_updates(k.hv, k.domid, [pt_maddr(l1, 0)], [(l1 << 12) | 7], batch_size=1)
    assert bad.applied == 0 and bad.results[0] < 0 and bad.hypercalls == 1 and bad.multicalls == 0
