"""The native scheme: the kernel owns the machine, PTEs hold machine frames, writes are plain stores."""

from vmlab.guest.kernel import boot_kernel
from vmlab.guest.schemes import SCHEME_CLASSES, SCHEMES
from vmlab.guest.schemes.native import NativeScheme
from vmlab.hardware.mmu import pte_frame

VA = 0x4000_0000


def test_four_schemes_one_class_each():
    assert SCHEMES == ("native", "pv", "shadow", "nested")
    assert all(issubclass(c, NativeScheme) and c.name == n for n, c in SCHEME_CLASSES.items())


def test_native_ptes_hold_machine_frames_and_cost_no_hypercall():
    k = boot_kernel("native", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    pfn = int(k.map(pid, VA, 1)[0])
    l1 = int(k.p2m[k.procs[pid].tables[(1, VA >> 21)]])
    assert pte_frame(int(k.mem.table(l1)[(VA >> 12) & 511])) == int(k.p2m[pfn])
    assert k.stats["hypercalls"] == 0 and k.stats["exits"] == 0 and k.stats["pt_writes"] == 4
    assert k.translate(VA) == (int(k.p2m[pfn]), None)
