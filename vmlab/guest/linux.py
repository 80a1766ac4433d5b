"""The parts of a Linux guest kernel the hypervisor model needs in Lab 1.

`minimum_target` is the balloon driver's floor, copied from the Xen Linux balloon
driver (linux-2.6.18-xen drivers/xen/balloon/balloon.c, and its FreeBSD port):
the guest refuses to balloon below it, which is why `xm mem-set` is only a target
the guest "may not reach".
"""

from __future__ import annotations

from vmlab.hardware.memory import PAGE_SHIFT


def _mb2pages(mb: int) -> int:
    return mb << (20 - PAGE_SHIFT)


def minimum_target(max_pfn: int, current_pages: int) -> int:
    """Pages below which the Xen balloon driver will not shrink a guest.

    Piecewise linear in max_pfn: 16 MiB -> 16, 128 -> 72, 512 -> 168, 2048 -> 360,
    8192 -> 552 MiB; never above the current size ("don't enforce growth").
    """
    if max_pfn < _mb2pages(128):
        min_pages = _mb2pages(8) + (max_pfn >> 1)
    elif max_pfn < _mb2pages(512):
        min_pages = _mb2pages(40) + (max_pfn >> 2)
    elif max_pfn < _mb2pages(2048):
        min_pages = _mb2pages(104) + (max_pfn >> 3)
    else:
        min_pages = _mb2pages(296) + (max_pfn >> 5)
    return min(min_pages, current_pages)


# What the console ring shows while a guest boots. The kernel version is the
# one Oracle VM Server 2.x guests ran (2.6.18-xen); the lines are trimmed.
def boot_messages(name: str, kind: str, memory_kib: int, vcpus: int, xen_version: tuple[int, int]) -> list[str]:
    if kind == "hvm":
        return [
            "SeaBIOS (version rel-1.x, QEMU device model in dom0)",
            f"Booting from Hard Disk... ({memory_kib // 1024} MiB, {vcpus} vCPU(s), unmodified guest)",
            f"{name} ready",
        ]
    return [
        "Linux version 2.6.18-xen (paravirtualized, runs in ring 3 on x86-64)",
        f"Xen version: {xen_version[0]}.{xen_version[1]}.0 (preserve-AD)",
        f"Memory: {memory_kib}k available",
        f"Brought up {vcpus} CPUs",
        "xen_mem: Initialising balloon driver.",
        "netfront: Initialising virtual ethernet driver.",
        "blkfront: xvda: barriers enabled",
        f"{name} login:",
    ]
