"""PV-on-HVM: the switch an HVM guest flips when it loads Xen's PV drivers.

Xen 3.4 hvm.c `do_hvm_op` (HVMOP_set_param / HVMOP_get_param, `rcu_lock_target_domain_by_id`,
`is_hvm_domain`), hvm/params.h (HVM_PARAM_CALLBACK_IRQ's PCI INTx encoding), xend's
XendDomainInfo.shutdown (the CALLBACK_IRQ test), unmodified_drivers platform-pci.
"""

import pytest

from helpers import make_xm, pv
from vmlab.errors import ConfigError, DomainStateError
from vmlab.guest.pv_on_hvm import callback_via_pci_intx, load_pv_drivers
from vmlab.hypervisor import constants as C
from vmlab.io.hotplug import BlockDevice, EmulatedDevice, NetDevice
from vmlab.io.system import io_system
from vmlab.toolstack.config import parse_xm_config

HVM_CFG = "name='w'\nbuilder='hvm'\nmemory=256\ndisk=['file:/OVS/running_pool/w/System.img,hda,w']\nvif=['bridge=xenbr0']"


def _hvm(xm, extra=""):
    return xm.create(parse_xm_config(HVM_CFG + extra))


def test_callback_via_encodes_the_platform_device_intx_line_as_params_h_says():
    # hvm/params.h: val[63:56] == 1 -> PCI INTx; DevFn = val[15:8]; the platform device is 00:03.0 INTA
    assert callback_via_pci_intx() == (1 << 56) | (3 << 3 << 8) == 0x0100000000001800


def test_hvm_op_param_rules_follow_do_hvm_op():
    xm = make_xm()
    w = _hvm(xm)
    p = xm.create(pv("p"))
    hv = xm.hv
    arg = {"domid": C.DOMID_SELF, "index": C.HVM_NR_PARAMS, "value": 1}
    assert hv.hypercall(w.domid, "hvm_op", C.HVMOP_set_param, arg) == C.EINVAL       # index >= HVM_NR_PARAMS
    arg = {"domid": w.domid, "index": C.HVM_PARAM_CALLBACK_IRQ, "value": 1}
    assert hv.hypercall(p.domid, "hvm_op", C.HVMOP_set_param, arg) == C.EPERM        # not privileged for w
    arg = {"domid": C.DOMID_SELF, "index": C.HVM_PARAM_CALLBACK_IRQ, "value": 1}
    assert hv.hypercall(p.domid, "hvm_op", C.HVMOP_set_param, arg) == C.EINVAL       # !is_hvm_domain
    assert hv.hypercall(0, "hvm_op", C.HVMOP_get_param, {"domid": 999, "index": 0}) == C.ESRCH
    assert hv.hypercall(w.domid, "hvm_op", 77, {"domid": C.DOMID_SELF, "index": 0}) == C.ENOSYS
    q = {"domid": w.domid, "index": C.HVM_PARAM_CALLBACK_IRQ}
    assert hv.hypercall(0, "hvm_op", C.HVMOP_get_param, q) == 0 and q["value"] == 0
    assert w.hvm_params == {}                                                        # refusals changed nothing


def test_loading_pv_drivers_replaces_emulated_disk_and_nic_with_split_drivers():
    xm = make_xm()
    w = _hvm(xm)
    io = io_system(xm.hv)
    assert [type(d) for d in io.devices[w.domid]] == [EmulatedDevice]
    load_pv_drivers(xm.hv, w.domid)
    assert w.hvm_params[C.HVM_PARAM_CALLBACK_IRQ] == callback_via_pci_intx()
    kinds = sorted(type(d).__name__ for d in io.devices[w.domid])
    assert kinds == [BlockDevice.__name__, NetDevice.__name__]
    set_by_guest = [e.detail for e in xm.hv.trace.filter(domid=w.domid, kind="hypercall")]
    assert f"hvm_op({C.HVMOP_set_param})" in set_by_guest and any(d.startswith("event_channel_op") for d in set_by_guest)


def test_without_the_platform_device_the_pv_drivers_have_nothing_to_bind_to():
    xm = make_xm()
    w = _hvm(xm, "\nxen_platform_pci=0")
    with pytest.raises(DomainStateError, match="xen_platform_pci=0"):
        load_pv_drivers(xm.hv, w.domid)
    assert w.hvm_params == {}


def test_ballooning_works_only_once_the_balloon_driver_is_loaded():
    xm = make_xm()
    w = _hvm(xm)
    assert xm.mem_set("w", 128) == 256          # no balloon driver in the unmodified guest
    load_pv_drivers(xm.hv, w.domid)
    assert xm.mem_set("w", 200) == 200


def test_a_pv_on_hvm_guest_keeps_its_pv_drivers_across_save_and_restore(tmp_path):
    xm = make_xm()
    w = _hvm(xm)
    load_pv_drivers(xm.hv, w.domid)
    xm.save("w", str(tmp_path / "w.save"))
    suspended_by_guest = [e.detail for e in xm.hv.trace.filter(domid=w.domid, kind="hypercall")]
    assert f"sched_op({C.SCHEDOP_shutdown})" in suspended_by_guest          # the guest suspended itself
    assert f"sched_op({C.SCHEDOP_remote_shutdown})" not in [e.detail for e in xm.hv.trace.filter(domid=0, kind="hypercall")]
    back = xm.restore(str(tmp_path / "w.save"))
    assert back.hvm_params[C.HVM_PARAM_CALLBACK_IRQ] != 0
    assert {type(d).__name__ for d in io_system(xm.hv).devices[back.domid]} == {"BlockDevice", "NetDevice"}


def test_hvm_keys_in_xm_config():
    cfg = parse_xm_config(HVM_CFG)
    assert cfg.xen_platform_pci == 1 and cfg.device_model == "/usr/lib/xen/bin/qemu-dm"
    with pytest.raises(ConfigError, match="HVM guests only"):
        parse_xm_config("name='p'\nkernel='/boot/vmlinuz'\nxen_platform_pci=1")
    with pytest.raises(ConfigError, match="0 or 1"):
        parse_xm_config(HVM_CFG + "\nxen_platform_pci=2")


def test_a_migrated_pv_on_hvm_guest_keeps_its_callback_and_its_pv_devices():
    """The HVM context xc_domain_save sends carries the HVM params; on the target the PV drivers reconnect."""
    from vmlab.hardware.host import Disk, HostSpec, StorageKind
    from vmlab.toolstack.migrate import migrate
    from vmlab.toolstack.pool import ServerPool
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=2048, disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                                                  Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"))))
    w = pool.xm("ovs1").create(parse_xm_config(HVM_CFG))
    load_pv_drivers(pool.server("ovs1"), w.domid)
    migrate(pool, "w", "ovs2", seed=0)
    new = pool.xm("ovs2").lookup("w")
    assert new.hvm_params[C.HVM_PARAM_CALLBACK_IRQ] == callback_via_pci_intx()
    assert {type(d).__name__ for d in io_system(pool.server("ovs2")).devices[new.domid]} == {"BlockDevice", "NetDevice"}
