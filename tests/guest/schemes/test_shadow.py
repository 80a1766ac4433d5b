"""The shadow scheme: guest tables hold guest frames; Xen shadows them and a CR3 load exits."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hypervisor import constants as C

VA = 0x4000_0000


def test_shadow_ptes_hold_guest_frames_and_cr3_loads_exit():
    k = boot_kernel("shadow", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    assert k.stats["exits"] == 1   # the CR3 load
    pfn = int(k.map(pid, VA, 1)[0])
    l1 = int(k.p2m[k.procs[pid].tables[(1, VA >> 21)]])
    assert int(k.mem.table(l1)[(VA >> 12) & 511]) >> 12 == pfn   # a guest frame, not a machine frame
    assert k.translate(VA)[0] == int(k.p2m[pfn])   # the shadow maps the machine frame
    assert k.counters()["shadow_builds"] >= 1


def test_shadow_frames_go_back_when_the_domain_dies():
    k = boot_kernel("shadow", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    k.map(k.spawn(), VA, 4)
    k.translate(VA)
    free = k.hv.memory.free_frames
    k.hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], k.domid)
    assert k.shadow is None and k.hv.memory.free_frames > free + 16 * 256
