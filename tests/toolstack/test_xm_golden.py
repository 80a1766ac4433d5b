"""Golden output: `xm list` and `xm info` print exactly what Xen 3's xm prints (checked example output).

The same pool is asked in memory and through the CLI's state file opened read-only
(memory kept as runs, no devices rebuilt): the text must not change by a byte.
"""

from vmlab.toolstack.commands import READONLY, is_readonly, run_xm
from vmlab.toolstack.config import virt_install
from vmlab.toolstack.pool import ServerPool
from vmlab.toolstack.state import StateFile

XM_LIST = """\
Name                                        ID   Mem VCPUs      State   Time(s)
Domain-0                                     0   512     4     r-----      0.2
vm1                                          1   512     1     -b----      0.0
vm2                                          2   256     2     --p---      0.0"""

# Xen 3.4 XendNode.info() = nodeinfo + physinfo + xeninfo + xendinfo, each in its ITEM_ORDER; xm_info
# (tools/python/xen/xm/main.py) prints info[1:] (everything after "system") as "%-23s:" % key, value.
XM_INFO = """\
host                   : ovs1
release                : 2.6.18-128.2.1.4.9.el5xen
version                : #1 SMP
machine                : x86_64
nr_cpus                : 4
nr_nodes               : 1
cores_per_socket       : 4
threads_per_core       : 1
cpu_mhz                : 2400
hw_caps                : bfebfbff:20100800:00000000:00000140:0098e3fd:00000000:00000001:00000000
virt_caps              : hvm
total_memory           : 8192
free_memory            : 6768
node_to_cpu            : node0:0-3
node_to_memory         : node0:6768
node_to_dma32_mem      : node0:2672
xen_major              : 3
xen_minor              : 4
xen_extra              : .0
xen_caps               : xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64
xen_scheduler          : credit
xen_pagesize           : 4096
platform_params        : virt_start=0xffff800000000000
xen_changeset          : unavailable
xen_commandline        : dom0_mem=512M
cc_compiler            : gcc version 4.1.2 20080704 (Red Hat 4.1.2-44)
cc_compile_by          : mockbuild
cc_compile_domain      : (none)
cc_compile_date        : Tue Oct 20 00:00:00 EDT 2009
xend_config_format     : 4"""


def _pool(pool: ServerPool) -> None:
    xm = pool.xm("ovs1")
    xm.create(virt_install(name="vm1", ram=512))
    xm.create(virt_install(name="vm2", ram=256, vcpus=2), paused=True)
    xm.hv.advance(3.0)


def test_xm_list_and_info_golden_in_memory():
    pool = ServerPool("pool1")
    pool.add_server(name="ovs1")
    _pool(pool)
    assert run_xm(pool, "list") == XM_LIST
    assert run_xm(pool, "info") == XM_INFO


def test_xm_list_and_info_golden_from_a_state_file_opened_read_only(tmp_path):
    sf = StateFile(tmp_path / "state.sqlite")
    with sf.transaction() as pool:
        _pool(pool)
    before = (tmp_path / "state.sqlite").read_bytes()
    with sf.transaction(write=False, devices=False) as pool:
        assert run_xm(pool, "list") == XM_LIST
        assert run_xm(pool, "info") == XM_INFO
        hv = pool.server()
        assert set(hv.memory._runs_of) == {"owner", "page_type", "type_count", "tot_count", "content"}  # never expanded
    assert (tmp_path / "state.sqlite").read_bytes() == before  # a read-only verb does not rewrite the file


def test_read_only_verbs_are_marked_in_the_command_table():
    assert {"list", "info", "console", "dmesg"} <= READONLY
    assert is_readonly(["list"]) and is_readonly(["info"]) and not is_readonly(["create", "vm.cfg"])
    assert not is_readonly(["mem-set", "vm1", "256"]) and not is_readonly(["migrate", "-l", "vm1", "ovs2"])


def test_xm_info_without_vt_has_no_hvm_caps_and_xend_refuses_an_hvm_guest():
    """xen_caps lists hvm-3.0-* only with VT-x/AMD-V; XendDomainInfo._constructDomain (Xen 3.4) refuses
    an HVM guest otherwise: "HVM guest support is unavailable: is VT/AMD-V supported by your CPU and enabled
    in your BIOS?"."""
    import pytest
    from vmlab.errors import ConfigError
    pool = ServerPool("pool1")
    pool.add_server(name="ovs1", hvm=False)
    info = {k.strip(): v for k, v in (line.split(":", 1) for line in run_xm(pool, "info").splitlines())}
    assert info["xen_caps"].strip() == "xen-3.0-x86_64 xen-3.0-x86_32p" and info["virt_caps"].strip() == ""
    with pytest.raises(ConfigError, match="HVM guest support is unavailable"):
        pool.xm("ovs1").create(virt_install(name="w", ram=256, hvm=True))
    assert [d.name for d in pool.server("ovs1").domains.values()] == ["Domain-0"]
