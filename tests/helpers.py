"""Small builders shared by the foundation tests."""

from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.config import parse_xm_config
from vmlab.toolstack.xm import Toolstack


def make_xm(memory_mib: int = 4096, pcpus: int = 4, dom0_mem_mib: int = 512) -> Toolstack:
    return Toolstack(Hypervisor(Host(HostSpec(name="ovs1", pcpus=pcpus, memory_mib=memory_mib)), dom0_mem_mib=dom0_mem_mib))


def pv(name: str = "vm1", memory: int = 256, vcpus: int = 1, **extra) -> "DomainConfig":
    lines = [f"name = {name!r}", f"memory = {memory}", f"vcpus = {vcpus}", "kernel = '/boot/vmlinuz-xen'"]
    lines += [f"{k} = {v!r}" for k, v in extra.items()]
    return parse_xm_config("\n".join(lines))


def snapshot(hv: Hypervisor) -> tuple:
    """Everything observable about a hypervisor's state, for 'unchanged' assertions."""
    mem = hv.memory
    doms = tuple(sorted((d.domid, d.name, d.state.value, d.max_pages, d.vcpus_online, d.target_pages,
                         d.p2m.tobytes()) for d in hv.domains.values()))
    return (mem.owner.tobytes(), mem.content.tobytes(), mem.free_frames, doms)
