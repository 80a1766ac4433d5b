"""The CLI state file under load and misuse: one line, a non-zero exit, the file unchanged.

Every refused command leaves the state file byte-identical (sha256 before and after);
read-only verbs never rewrite it; 50 concurrent processes all get their turn
(SQLite's BEGIN IMMEDIATE lock, waited for with backoff); a load refuses a state that
cannot be (a domU marked privileged: Xen gives privilege only to domain 0, IS_PRIV;
two domains sharing a frame or counts that do not add up: Xen's page owner is one
domain, d->tot_pages counts exactly its pages).
"""

import hashlib
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from vmlab.toolstack.cli import main
from vmlab.toolstack.state import StateFile

CFG = "name = 'vm1'\nmemory = 256\nkernel = '/boot/vmlinuz-xen'\n"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def state(tmp_path, capsys):
    s = tmp_path / "s.sqlite"
    (tmp_path / "vm1.cfg").write_text(CFG)
    assert main(["--state", str(s), "xm", "create", str(tmp_path / "vm1.cfg")]) == 0
    capsys.readouterr()
    return s


def refused(capsys, state, *args, code=1):
    before = sha(state)
    assert main(["--state", str(state), *args]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vmlab: error: ")
    assert sha(state) == before
    return err


@pytest.mark.parametrize("data", [b"\xff\xfe\x00\x01\x9c binary", "name = 'vm2'\n".encode("utf-16"),
                                  "name = 'vm\xe9'\nmemory = 256\n".encode("latin-1")], ids=["binary", "utf16", "latin1"])
def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, capsys, state, data):
    (tmp_path / "bad.cfg").write_bytes(data)
    assert "is not UTF-8 text" in refused(capsys, state, "xm", "create", str(tmp_path / "bad.cfg"))


@pytest.mark.parametrize("args", [("xm", "mem-set", "vm1", "nan"), ("xm", "mem-set", "vm1", "1e400"),
                                  ("sim", "advance", "nan"), ("sim", "advance", "inf"),
                                  ("pool", "init", "--servers", "0"), ("pool", "init", "--servers", "-2")])
def test_non_finite_numbers_and_empty_pools_are_one_line(capsys, state, args):
    refused(capsys, state, *args)


def test_state_naming_a_directory_or_a_path_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    before = sha(tmp_path / "afile")
    assert main(["--state", str(tmp_path), "xm", "list"]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert main(["--state", str(tmp_path / "afile" / "s.sqlite"), "xm", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is a file, not a folder" in err and len(err.splitlines()) == 1
    assert sha(tmp_path / "afile") == before


@pytest.mark.parametrize("args", [("xm", "list"), ("xm", "info"), ("pool", "show"), ("xm", "console", "vm1"),
                                  ("xm", "dmesg")])
def test_read_only_verbs_do_not_rewrite_the_state_file(capsys, state, args):
    before = sha(state)
    assert main(["--state", str(state), *args]) == 0
    assert sha(state) == before


def _tamper(state, change):
    with StateFile(state).transaction() as pool:
        change(pool.server())


def _share(hv):
    a, b = (d for d in hv.domains.values())
    b.p2m[0] = a.p2m[0]


@pytest.mark.parametrize("change, words", [
    (lambda hv: setattr(hv.domains[1], "privileged", True), "marked privileged"),
    (_share, "share frame"),
    (lambda hv: hv.domains[1].p2m.__setitem__(np.s_[-8:], -1), "owns"),
], ids=["privileged-domU", "shared-frames", "counts"])
def test_load_refuses_an_impossible_state_with_the_file_untouched(capsys, state, change, words):
    _tamper(state, change)
    err = refused(capsys, state, "xm", "list")
    assert "is inconsistent" in err and words in err


def test_a_lock_held_too_long_says_so_and_never_blames_the_file(state):
    before = sha(state)   # read first: closing any fd on the file drops this process's POSIX locks
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = subprocess.run([sys.executable, "-m", "vmlab.toolstack.cli", "--state", str(state), "sim", "advance", "1"],
                              capture_output=True, text=True, timeout=300, env=dict(os.environ, VMLAB_LOCK_WAIT="1"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1
    assert "still locked by another vmlab command" in err and "not a vmlab state database" not in err
    assert sha(state) == before


def test_fifty_concurrent_commands_on_one_state_file_all_succeed(state):
    """BEGIN IMMEDIATE serialises them; each waits its turn (StateFile._begin: busy timeout + backoff)."""
    cmd = [sys.executable, "-m", "vmlab.toolstack.cli", "--state", str(state), "sim", "advance", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(50)]
    results = [(p.wait(timeout=1200), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0] * 50, [e for rc, e in results if rc][:3]
    with StateFile(state).transaction(write=False, devices=False) as pool:
        assert pool.server().now_ns == 50 * 10**9   # every call's second was applied, none lost
