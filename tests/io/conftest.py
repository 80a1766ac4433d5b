import pytest

from vmlab.io.system import io_system, new_io_machine


@pytest.fixture
def machine():
    """(hv, domid, io): a small host, dom0 and one running PV guest with no devices."""
    hv, domid = new_io_machine()
    return hv, domid, io_system(hv)


@pytest.fixture
def two_guests():
    """(hv, domid1, domid2, io)."""
    from vmlab.hardware.memory import frames_from_mib
    from vmlab.hypervisor import constants as C
    from vmlab.hypervisor.domain import DomainConfig
    import numpy as np
    hv, d1 = new_io_machine()
    out = {}
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, DomainConfig(name="guest2", memory_mib=64), out)
    d2 = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], d2, 64 * 1024)
    pfns = np.arange(frames_from_mib(64), dtype=np.int64)
    hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, d2, pfns.size, pfns)
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], d2)
    io = io_system(hv)
    io.xenstore.introduce_domain(d2, "guest2")
    return hv, d1, d2, io


@pytest.fixture
def vbd(machine):
    """(hv, domid, io, BlockDevice): the guest with a connected xvda."""
    from vmlab.hypervisor.domain import DiskSpec
    from vmlab.io.hotplug import attach_block
    hv, d, io = machine
    dev = attach_block(io, d, DiskSpec(path="/OVS/running_pool/vm1/System.img", vdev="xvda"))
    return hv, d, io, dev


@pytest.fixture
def lan(two_guests):
    """(hv, io, NetDevice, NetDevice): both guests on xenbr0."""
    from vmlab.hypervisor.domain import VifSpec
    from vmlab.io.hotplug import attach_vif
    hv, d1, d2, io = two_guests
    a = attach_vif(io, d1, VifSpec(bridge="xenbr0"))
    b = attach_vif(io, d2, VifSpec(bridge="xenbr0"))
    return hv, io, a, b
