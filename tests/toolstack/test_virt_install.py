"""virt-install's two install paths and the flag combinations it refuses.

Rules from virt-install's option checks (`_check_option_collisions`: one install method;
"Paravirtualized guests cannot install off cdrom media."; "--extra-args only work if specified
with --location."), paths from python-virtinst (ParaVirtGuest: the tree's images/xen kernel
copied to /var/lib/xen, then pygrub; FullVirtGuest: hvmloader + qemu-dm with the ISO as a CD-ROM).
"""

import pytest

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DomainKind
from vmlab.toolstack.config import virt_install_argv, virt_install_plan
from vmlab.toolstack.virt_install import DEVICE_MODEL, PYGRUB


def test_pv_network_install_boots_the_trees_kernel_then_pygrub():
    plan = virt_install_plan(name="el5", ram=512, paravirt=True, location="nfs:10.0.0.5:/el5",
                             extra_args="ks=nfs:10.0.0.5:/ks.cfg", os_type="linux", os_variant="rhel5")
    assert plan.path == "pv" and plan.install.kernel == "/var/lib/xen/vmlinuz.el5"
    assert plan.install.extra == "method=nfs:10.0.0.5:/el5 ks=nfs:10.0.0.5:/ks.cfg"
    assert plan.install.on_reboot == "destroy" and not plan.install.bootloader
    assert plan.boot.bootloader == PYGRUB and not plan.boot.kernel
    assert any("pygrub" in s for s in plan.steps)


def test_hvm_install_from_an_iso_uses_hvmloader_qemu_dm_and_a_cdrom():
    plan = virt_install_plan(name="w2k3", ram=1024, hvm=True, cdrom="/OVS/iso_pool/w2k3.iso", os_variant="win2k3")
    assert plan.path == "hvm" and plan.os_type == "windows"
    assert plan.install.kind is DomainKind.HVM and plan.install.device_model == DEVICE_MODEL
    assert [(d.path, d.vdev, d.mode) for d in plan.install.disks][1] == ("/OVS/iso_pool/w2k3.iso", "hdc", "r")
    assert len(plan.boot.disks) == 1 and any("hvmloader" in s for s in plan.steps)


@pytest.mark.parametrize("argv, match", [
    ("-n a -r 256 -p -c /OVS/iso_pool/el5.iso", "Paravirtualized guests cannot install off cdrom media"),
    ("-n a -r 256 -v -c /OVS/iso_pool/el5.iso -l nfs:h:/el5", "Only one install method can be used"),
    ("-n a -r 256 -p -x console=ttyS0", "--extra-args only work if specified with --location"),
    ("-n a -r 256 -v --os-variant win2k9", "not a known OS variant"),
    ("-n a -r 256 -v --os-type linux --os-variant win2k3", "windows variant, not linux"),
])
def test_flag_combinations_virt_install_refuses(argv, match):
    with pytest.raises(ConfigError, match=match) as e:
        virt_install_argv(argv)
    assert "\n" not in str(e.value)


def test_short_and_long_flags_agree():
    a = virt_install_argv("-n a -r 256 -p -l http://mirror/el5 -x text")
    b = virt_install_argv("--name a --ram 256 --paravirt --location http://mirror/el5 --extra-args text")
    assert a == b and a.extra == "method=http://mirror/el5 text"
