"""The audit recounts every reference from live tables, pins and CR3 (Xen's invariants)."""

from vmlab.guest.kernel import boot_kernel
from vmlab.paging.audit import audit

VA = 0x4000_0000


def test_a_kernels_tables_audit_clean_and_a_broken_count_is_named():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 16)
    k.fork(pid)
    k.flush()
    assert audit(k.hv, k.domid) == []
    mfn = int(k.p2m[k.procs[pid].root])
    k.mem.type_count[mfn] += 1
    assert any(f"frame {mfn:#x}: type_count" in p for p in audit(k.hv, k.domid))
