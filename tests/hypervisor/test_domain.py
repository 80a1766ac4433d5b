import pytest

from vmlab.errors import ConfigError, DomainStateError
from vmlab.hypervisor.domain import (LEGAL_TRANSITIONS, DiskSpec, DomainConfig, DomainState, VifSpec,
                                     config_from_dict, config_to_dict)


def test_state_flags_are_xm_lists_six_positions():
    assert DomainState.RUNNING.flags == "r-----"
    assert DomainState.PAUSED.flags == "--p---"
    assert DomainState.DYING.flags == "-----d"


def test_only_legal_transitions_are_allowed():
    from vmlab.hypervisor.domain import Domain
    d = Domain(domid=1, config=DomainConfig(name="a"), state=DomainState.CRASHED)
    with pytest.raises(DomainStateError, match="crashed; it cannot become running"):
        d.transition(DomainState.RUNNING)
    assert d.state is DomainState.CRASHED
    assert LEGAL_TRANSITIONS[DomainState.DYING] == frozenset()


def test_disk_and_vif_entries_parse_and_print_back():
    d = DiskSpec.parse("file:/OVS/running_pool/vm1/System.img,xvda,w")
    assert (d.backend, d.path, d.vdev, d.mode) == ("file", "/OVS/running_pool/vm1/System.img", "xvda", "w")
    assert DiskSpec.parse(str(d)) == d
    v = VifSpec.parse("bridge=xenbr0,mac=00:16:3E:01:02:03,vlan=12")
    assert v.mac == "00:16:3e:01:02:03" and v.vlan == 12 and VifSpec.parse(str(v)) == v


@pytest.mark.parametrize("text, match", [("xvda", "type:path,vdev,mode"), ("nfs:/x,xvda,w", "backend"),
                                         ("file:/x,xvda,rw", "mode")])
def test_bad_disk_entries(text, match):
    with pytest.raises(ConfigError, match=match):
        DiskSpec.parse(text)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": ""}, "name="), ({"name": "123"}, "all digits"), ({"name": "a", "memory_mib": 8}, "16 MiB"),
    ({"name": "a", "vcpus": 0}, "vcpus=0"), ({"name": "a", "memory_mib": 512, "maxmem_mib": 256}, "maxmem=256"),
    ({"name": "a", "on_crash": "explode"}, "on_crash"),
])
def test_bad_configs_name_the_value_and_the_rule(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DomainConfig(**kwargs)


def test_config_dict_round_trip():
    cfg = DomainConfig(name="a", disks=(DiskSpec.parse("phy:/dev/sdb,xvdb,r"),), vifs=(VifSpec(),), maxmem_mib=512)
    assert config_from_dict(config_to_dict(cfg)) == cfg
