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

XM_INFO = """\
host                   : ovs1
nr_cpus                : 4
total_memory           : 8192
free_memory            : 6768
xen_major              : 3
xen_minor              : 4
xen_extra              : .0"""


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
