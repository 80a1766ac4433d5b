"""The vmlab CLI across separate processes sharing one state file."""

import os
import sqlite3
import subprocess
import sys

import pytest

from vmlab.toolstack.cli import main
from vmlab.toolstack.state import StateFile

CFG = """name = 'vm1'
memory = 512
vcpus = 2
kernel = '/boot/vmlinuz-2.6.18-xen'
disk = ['file:/OVS/running_pool/vm1/System.img,xvda,w']
vif = ['bridge=xenbr0']
"""


def vmlab(state, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "vmlab.toolstack.cli", "--state", str(state), *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_xm_verbs_work_across_processes_on_one_state_file(tmp_path):
    state, cfg = tmp_path / "s.sqlite", tmp_path / "vm1.cfg"
    cfg.write_text(CFG)
    out = vmlab(state, "xm", "create", str(cfg)).stdout
    assert f'Using config file "{cfg}".' in out and "Started domain vm1 (id=1)" in out
    vmlab(state, "virt-install", "-n", "vm2", "-r", "256", "-p")
    vmlab(state, "xm", "pause", "vm1")
    vmlab(state, "xm", "mem-set", "vm2", "128")
    listing = vmlab(state, "xm", "list").stdout.splitlines()
    assert listing[0] == "Name                                        ID   Mem VCPUs      State   Time(s)"
    assert listing[2] == "vm1                                          1   512     2     --p---      0.0"
    assert listing[3].split()[:3] == ["vm2", "2", "128"]
    vmlab(state, "xm", "unpause", "vm1")
    vmlab(state, "xm", "save", "vm1", str(tmp_path / "vm1.sav"))
    assert "vm1" not in vmlab(state, "xm", "list").stdout
    assert "Restored domain vm1 (id=3)" in vmlab(state, "xm", "restore", str(tmp_path / "vm1.sav")).stdout
    vmlab(state, "xm", "destroy", "vm1")
    assert [l.split()[0] for l in vmlab(state, "xm", "list").stdout.splitlines()[1:]] == ["Domain-0", "vm2"]


@pytest.mark.parametrize("args, code, message", [
    (["xm", "pause", "vm9"], 1, "'vm9' does not exist"),
    (["xm", "frobnicate"], 2, "invalid choice"),
    (["xm", "mem-set", "Domain-0", "lots"], 1, "not a size"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys, args, code, message):
    assert main(["--state", str(tmp_path / "s.sqlite"), *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_refused_command_leaves_the_state_file_unchanged(tmp_path, capsys):
    state = tmp_path / "s.sqlite"
    main(["--state", str(state), "virt-install", "-n", "vm2", "-r", "256"])
    before = state.read_bytes()
    assert main(["--state", str(state), "virt-install", "-n", "vm2", "-r", "256"]) == 1
    assert "already used" in capsys.readouterr().err
    assert state.read_bytes() == before


@pytest.mark.parametrize("content, message", [
    (b"this is not a database at all" * 100, "not a vmlab state database"),
])
def test_corrupt_state_file_is_refused(tmp_path, capsys, content, message):
    state = tmp_path / "s.sqlite"
    state.write_bytes(content)
    assert main(["--state", str(state), "xm", "list"]) == 1
    assert message in capsys.readouterr().err
    assert state.read_bytes() == content


def test_foreign_and_future_state_files_are_refused(tmp_path, capsys):
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    assert main(["--state", str(foreign), "xm", "list"]) == 1
    assert "belongs to another program" in capsys.readouterr().err
    future = tmp_path / "future.sqlite"
    main(["--state", str(future), "xm", "list"])
    con = sqlite3.connect(future)
    con.execute("UPDATE meta SET value='99' WHERE key='version'")
    con.commit()
    con.close()
    assert main(["--state", str(future), "xm", "list"]) == 1
    assert "version 99" in capsys.readouterr().err


def test_a_failure_inside_a_transaction_rolls_back(tmp_path):
    sf = StateFile(tmp_path / "s.sqlite")
    with sf.transaction() as pool:
        pool.xm().create(__import__("helpers").pv("keep"))
    with pytest.raises(RuntimeError):
        with sf.transaction() as pool:
            pool.xm().create(__import__("helpers").pv("lost"))
            raise RuntimeError("crash mid-command")
    with sf.transaction(write=False) as pool:
        assert sorted(d.name for d in pool.server().domains.values()) == ["Domain-0", "keep"]


def test_state_path_comes_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VMLAB_STATE", str(tmp_path / "env.sqlite"))
    assert main(["xm", "list"]) == 0
    assert (tmp_path / "env.sqlite").exists()


def test_pool_and_sim_commands(tmp_path, capsys):
    s = ["--state", str(tmp_path / "s.sqlite")]
    assert main(s + ["pool", "add-server", "ovs2", "--memory", "4g"]) == 0
    assert main(s + ["virt-install", "-n", "vm2", "-r", "256"]) == 0
    assert main(s + ["sim", "load", "vm2", "1"]) == 0
    assert main(s + ["sim", "advance", "5"]) == 0
    capsys.readouterr()
    assert main(s + ["pool", "show"]) == 0
    assert "ovs2" in capsys.readouterr().out
    assert main(s + ["xm", "list", "vm2"]) == 0
    assert capsys.readouterr().out.split()[-1] == "5.0"
    assert main(s + ["sim", "crash", "vm2"]) == 0  # on_crash=restart: back with a new domid
    assert main(s + ["xm", "list", "vm2"]) == 0
    assert capsys.readouterr().out.split()[-5] == "2"


def test_xm_migrate_moves_a_guest_and_reports_progress_on_stderr(tmp_path, capsys):
    s = ["--state", str(tmp_path / "s.sqlite")]
    assert main(s + ["pool", "init", "--servers", "2", "--memory", "2g"]) == 0
    assert main(s + ["virt-install", "-n", "vm1", "-r", "256", "-p"]) == 0
    capsys.readouterr()
    assert main(s + ["xm", "migrate", "-l", "vm1", "ovs2"]) == 0
    out, err = capsys.readouterr()
    assert "xen3: completed" in out
    assert err.startswith("migrate: round 1 precopy: 65536 pages sent")
    assert main(s + ["xm", "--host", "ovs2", "list", "vm1"]) == 0
    assert main(s + ["xm", "list", "vm1"]) == 1  # gone from ovs1


# --------------------------------------------------------------------------- conventions (issue 16)

from vmlab import cli as vmlab_cli  # noqa: E402
from vmlab.errors import ConfigError, DomainNotFound, UsageError, VmlabError  # noqa: E402
from vmlab.toolstack import cli as toolstack_cli  # noqa: E402


def test_version_is_the_distribution_version(capsys):
    from importlib.metadata import version
    assert vmlab_cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"vmlab {version('vmlab')}\n"


def test_python_m_vmlab_is_the_vmlab_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vmlab", "--state", str(tmp_path / "s.sqlite"), "xm", "list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("Domain-0")


@pytest.mark.parametrize("args, usage", [
    (["--help"], "usage: vmlab "),
    (["pool", "--help"], "usage: vmlab pool "),
    (["xm", "--help"], "usage: xm "),
    (["xm", "create", "--help"], "usage: xm create "),
])
def test_help_is_printed_once(tmp_path, capsys, args, usage):
    assert vmlab_cli.main(["--state", str(tmp_path / "s.sqlite"), *args]) == 0
    out = capsys.readouterr().out
    assert out.count("usage:") == 1 and out.startswith(usage)


@pytest.mark.parametrize("args, message", [
    ([], "vmlab: error: the following arguments are required: COMMAND"),
    (["pool", "frob"], "vmlab: error: pool: argument ACTION: invalid choice: 'frob'"),
    (["xm", "frobnicate"], "vmlab: error: xm: argument VERB: invalid choice: 'frobnicate'"),
])
def test_the_error_prefix_is_printed_once(tmp_path, capsys, args, message):
    assert vmlab_cli.main(["--state", str(tmp_path / "s.sqlite"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("error:") == 1 and err.count("\n") == 1


@pytest.mark.parametrize("exc, code", [
    (UsageError("anything at all"), 2),
    (ConfigError("xm: looks like a usage message; see `xm --help`"), 1),  # the class decides, not the text
    (DomainNotFound("domain 'vm9' does not exist"), 1),
    (VmlabError("refused"), 1),
    (KeyboardInterrupt(), 130),
])
def test_exit_codes_come_from_the_error_class(monkeypatch, capsys, exc, code):
    def fail(*args, **kwargs):
        raise exc
    monkeypatch.setattr(toolstack_cli, "run", fail)
    assert toolstack_cli.main(["xm", "list"]) == code
    assert toolstack_cli.exit_code(exc) == code
    assert "Traceback" not in capsys.readouterr().err


def test_bare_xm_prints_xms_usage_and_exits_2(tmp_path, capsys):
    assert vmlab_cli.main(["--state", str(tmp_path / "s.sqlite"), "xm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: xm [-h] VERB ...\n")
    assert err.splitlines()[-1] == "vmlab: error: xm: a VERB is required; `vmlab xm help` lists them"
    assert not (tmp_path / "s.sqlite").exists()  # usage errors never touch the state


def test_xm_help_lists_every_verb_and_xm_help_verb_shows_one(tmp_path, capsys):
    from vmlab.toolstack.commands import VERBS
    s = ["--state", str(tmp_path / "s.sqlite")]
    assert vmlab_cli.main(s + ["xm", "help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {verb}" in out for verb in VERBS)
    assert vmlab_cli.main(s + ["xm", "help", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: xm list [-h] [-l] [domain]") and "-l, --long" in out
    assert vmlab_cli.main(s + ["xm", "help", "frob"]) == 2


def test_labs_copy_through_the_vmlab_command(tmp_path, capsys):
    assert vmlab_cli.main(["labs", "copy", str(tmp_path / "labs")]) == 0
    from vmlab.labs import lab_names
    assert f"{len(lab_names())} lab(s) copied, 0 skipped" in capsys.readouterr().out
    assert toolstack_cli.main(["labs", "copy", str(tmp_path / "x")]) == 2  # only vmlab.cli knows labs


def test_a_malformed_virt_install_line_is_a_usage_error(tmp_path, capsys):
    assert vmlab_cli.main(["--state", str(tmp_path / "s.sqlite"), "virt-install", "-n", "vm1"]) == 2
    assert capsys.readouterr().err.startswith("vmlab: error: virt-install: the following arguments are required: -r/--ram")
