import pytest

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DomainKind
from vmlab.toolstack.config import format_xm_config, parse_xm_config, virt_install, virt_install_argv

GOOD = """
# Oracle VM guest
name = "vm1"
memory = 512
maxmem = 1024
vcpus = 2
bootloader = "/usr/bin/pygrub"
disk = ['file:/OVS/running_pool/vm1/System.img,xvda,w', 'phy:/dev/sdb1,xvdb,r']
vif = ['bridge=xenbr0,mac=00:16:3e:00:00:01']
on_crash = 'preserve'
vnc = 1
"""


def test_an_xm_config_file_parses_to_a_domain_config():
    cfg = parse_xm_config(GOOD)
    assert (cfg.name, cfg.memory_mib, cfg.maxmem_mib, cfg.vcpus, cfg.kind) == ("vm1", 512, 1024, 2, DomainKind.PV)
    assert [d.vdev for d in cfg.disks] == ["xvda", "xvdb"] and cfg.vifs[0].mac == "00:16:3e:00:00:01"
    assert cfg.on_crash == "preserve"
    assert parse_xm_config(format_xm_config(cfg)) == cfg


def test_builder_hvm_makes_an_hvm_guest_without_a_kernel():
    assert parse_xm_config("name='w'\nbuilder='hvm'\nmemory=1024").kind is DomainKind.HVM


@pytest.mark.parametrize("text, match", [
    ("name='a'\nmemroy=256\nkernel='k'", "unknown key 'memroy'; did you mean 'memory'"),
    ("name='a'\nimport os", "only 'key = value'"),
    ("name='a'\nmemory=os.system('x')", "not a literal"),
    ("name='a'\nmemory=", "an xm config is lines"),
    ("memory=256\nkernel='k'", "no name"),
    ("name='a'\nmemory=256", "PV guest needs kernel"),
    ("name='a'\nmemory='lots'\nkernel='k'", "whole number"),
    ("name='a'\nkernel='k'\ndisk=['xvda']", "type:path,vdev,mode"),
    ("name='a'\nkernel='k'\nbuilder='xen'", "builder"),
])
def test_bad_config_files_get_one_clear_line(text, match):
    with pytest.raises(ConfigError, match=match) as e:
        parse_xm_config(text)
    assert "\n" not in str(e.value)


def test_config_parsing_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError):
        parse_xm_config(f"name='a'\nkernel=open({str(marker)!r}, 'w').write('x')")
    assert not marker.exists()


def test_virt_install_call_and_command_line_agree():
    a = virt_install(name="vm2", ram=512, vcpus=2, paravirt=True)
    b = virt_install_argv("virt-install -n vm2 -r 512 --vcpus 2 -p --nographics")
    assert a == b
    assert a.disks[0].path == "/OVS/running_pool/vm2/System.img" and a.vifs[0].bridge == "xenbr0"
    assert virt_install_argv(["-n", "w", "-r", "1024", "-v"]).kind is DomainKind.HVM


def test_virt_install_bad_flags_raise_config_error():
    with pytest.raises(ConfigError, match="required: -r/--ram"):
        virt_install_argv("-n vm2")
    with pytest.raises(ConfigError, match="--network"):
        virt_install(name="a", ram=256, network="eth0")
