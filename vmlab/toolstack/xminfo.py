"""`xm info`: Xen 3.4's fields, in its order and format; and what xen_caps decides (can this host run HVM?).

Xen 3.4 tools/python/xen/xend/XendNode.py: `info()` = nodeinfo() + physinfo() +
xeninfo() + xendinfo(), each list in its ITEM_ORDER; tools/python/xen/xm/main.py
`xm_info` prints `info[1:]` (all but "system") as `"%-23s:" % key, value`.
Values that describe the host come from the model (CPUs, memory, VT-x, dom0_mem);
the build strings (kernel release, compiler, hw_caps words) are ILLUSTRATIVE stand-ins
for an Oracle VM Server 2.2 x86_64 box, named so below.
"""

from __future__ import annotations

from vmlab.errors import ConfigError
from vmlab.hardware.memory import FREE, mib_from_frames
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainConfig, DomainKind

__all__ = ["info_rows", "format_info", "xen_caps", "check_hvm_capable"]

# ILLUSTRATIVE build strings: an EL5-based Oracle VM Server 2.2 dom0 and Xen 3.4.0 built with EL5's gcc.
DOM0_RELEASE = "2.6.18-128.2.1.4.9.el5xen"
BUILD = {"cc_compiler": "gcc version 4.1.2 20080704 (Red Hat 4.1.2-44)", "cc_compile_by": "mockbuild",
         "cc_compile_domain": "(none)", "cc_compile_date": "Tue Oct 20 00:00:00 EDT 2009"}
HW_CAPS = "bfebfbff:20100800:00000000:00000140:0098e3fd:00000000:00000001:00000000"   # ILLUSTRATIVE Xeon words
# x86_64 Xen: PV guests 64-bit and 32-bit PAE; with VT-x/AMD-V, HVM guests of every mode (xen_caps).
XEN_CAPS_PV = "xen-3.0-x86_64 xen-3.0-x86_32p"
XEN_CAPS_HVM = "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"
DMA32_FRAMES = (4 << 30) >> 12           # memory below 4 GiB (node_to_dma32_mem)


def xen_caps(host) -> str:
    return XEN_CAPS_PV + (" " + XEN_CAPS_HVM if host.spec.hvm else "")


def check_hvm_capable(hv, config: DomainConfig) -> None:
    """XendDomainInfo._constructDomain (Xen 3.4): no 'hvm' in xen_caps -> no HVM guest."""
    if config.kind is DomainKind.HVM and "hvm" not in xen_caps(hv.host):
        raise ConfigError(f"builder='hvm' for {config.name}: HVM guest support is unavailable: is VT/AMD-V "
                          f"supported by your CPU and enabled in your BIOS? ({hv.host.name} xen_caps: "
                          f"{xen_caps(hv.host)}); run it as a PV guest or on a VT-capable server")


def _free_below(mem, limit: int) -> int:
    starts, lengths, owners = mem.runs()      # from runs: a read-only call never expands memory
    ends = starts + lengths
    free = owners == FREE
    overlap = (ends.clip(max=limit) - starts.clip(max=limit))[free]
    return int(overlap.sum())


def info_rows(hv) -> list[tuple[str, object]]:
    """(key, value) in Xen 3.4's order, starting at "host" (xm prints info[1:])."""
    spec, mem = hv.host.spec, hv.memory
    free_mib = mib_from_frames(mem.free_frames)
    dom0_mib = hv.domains[0].config.memory_mib if 0 in hv.domains else 0
    cpus = f"0-{spec.pcpus - 1}" if spec.pcpus > 1 else "0"
    major, minor = C.XEN_VERSION
    node = [("host", spec.name), ("release", DOM0_RELEASE), ("version", "#1 SMP"), ("machine", "x86_64")]
    phys = [("nr_cpus", spec.pcpus), ("nr_nodes", 1), ("cores_per_socket", spec.pcpus), ("threads_per_core", 1),
            ("cpu_mhz", spec.cpu_mhz), ("hw_caps", HW_CAPS), ("virt_caps", "hvm" if spec.hvm else ""),
            ("total_memory", spec.memory_mib), ("free_memory", free_mib), ("node_to_cpu", f"node0:{cpus}"),
            ("node_to_memory", f"node0:{free_mib}"),
            ("node_to_dma32_mem", f"node0:{mib_from_frames(_free_below(mem, DMA32_FRAMES))}")]
    xen = [("xen_major", major), ("xen_minor", minor), ("xen_extra", ".0"), ("xen_caps", xen_caps(hv.host)),
           ("xen_scheduler", "credit"), ("xen_pagesize", 4096), ("platform_params", "virt_start=0xffff800000000000"),
           ("xen_changeset", "unavailable"), ("xen_commandline", f"dom0_mem={dom0_mib}M"), *BUILD.items()]
    return node + phys + xen + [("xend_config_format", 4)]


def format_info(hv) -> str:
    """xm_info: `print "%-23s:" % key, value` per row."""
    return "\n".join(("%-23s:" % k) + " " + str(v) for k, v in info_rows(hv))
