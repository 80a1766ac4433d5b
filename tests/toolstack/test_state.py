"""The CLI's state file: the pool encoded as runs, read-only verbs open it without rewriting it."""

import numpy as np

from vmlab.toolstack.cli import main
from vmlab.toolstack.config import virt_install
from vmlab.toolstack.pool import ServerPool
from vmlab.toolstack.state import StateFile, dump_pool, load_pool


def _pool() -> ServerPool:
    pool = ServerPool("pool1")
    pool.add_server(name="ovs1", memory_mib=2048)
    pool.xm("ovs1").create(virt_install(name="vm1", ram=256))
    return pool


def test_dump_and_load_give_back_the_same_pool():
    pool = _pool()
    back = load_pool(dump_pool(pool))
    a, b = pool.server("ovs1"), back.server("ovs1")
    assert np.array_equal(a.memory.owner, b.memory.owner) and np.array_equal(a.memory.content, b.memory.content)
    assert [d.name for d in b.domains.values()] == ["Domain-0", "vm1"]
    quiet = load_pool(dump_pool(pool), devices=False)
    assert dump_pool(quiet) == dump_pool(load_pool(dump_pool(quiet), devices=False))   # the encoding is stable


def test_loading_without_devices_builds_no_io_system():
    back = load_pool(dump_pool(_pool()), devices=False)
    hv = back.server("ovs1")
    assert "io" not in hv.subsystems and "io_state" not in vars(hv)
    assert hv.domains[1].devices   # the device records are kept; only the live rings are not rebuilt


def test_read_only_cli_verbs_leave_the_file_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    with StateFile(path).transaction() as pool:
        pool.xm().create(virt_install(name="vm1", ram=256))
    before = path.read_bytes()
    for verb in (["list"], ["info"], ["console", "vm1"], ["dmesg"]):
        assert main(["--state", str(path), "xm", *verb]) == 0
    assert path.read_bytes() == before
    assert main(["--state", str(path), "xm", "pause", "vm1"]) == 0
    assert path.read_bytes() != before   # a writing verb saves
    capsys.readouterr()
