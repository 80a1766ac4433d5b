"""`vmlab ovm ...` and `vmlab sim fail-server|partition|cut-storage|heal` on one state file, across processes."""

import subprocess
import sys

from vmlab.cli import main


def vmlab(state, *args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "vmlab", "--state", str(state), *args],
                          capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc.stdout + proc.stderr


def test_ovm_verbs_work_across_processes_on_one_state_file(tmp_path):
    s = tmp_path / "state.sqlite"
    assert "master ovs1" in vmlab(s, "ovm", "pool", "create", "--servers", "3", "--memory", "2g")
    vmlab(s, "ovm", "template", "import", "EL5", "--memory", "256", "--image-size", "256m")
    out = vmlab(s, "ovm", "vm", "create", "web1", "--template", "EL5", "--server", "ovs2", "--ha")
    assert "web1 created on ovs2" in out and "over the network" in out
    vmlab(s, "ovm", "pool", "ha", "on")
    assert "name = 'web1'" in vmlab(s, "ovm", "vm", "config", "web1")
    assert "web1" in vmlab(s, "xm", "--host", "ovs2", "list")          # the xm path sees the same guest
    vmlab(s, "sim", "fail-server", "ovs2")
    vmlab(s, "sim", "advance", "61")
    events = vmlab(s, "ovm", "events")
    assert "dead" in events and "restart" in events
    listing = vmlab(s, "ovm", "vm", "list")
    assert "web1         running  ovs" in listing and "ovs2" not in listing.splitlines()[1]
    vmlab(s, "sim", "heal")
    row = next(r for r in vmlab(s, "ovm", "server", "list").splitlines() if r.startswith("ovs2"))
    assert row.split()[:3] == ["ovs2", "1", "up"]


def test_partition_without_fencing_from_the_command_line(tmp_path):
    s = tmp_path / "state.sqlite"
    vmlab(s, "ovm", "pool", "create", "--servers", "3", "--memory", "2g")
    vmlab(s, "ovm", "template", "import", "EL5", "--memory", "256", "--image-size", "256m")
    vmlab(s, "ovm", "vm", "create", "db", "--template", "EL5", "--server", "ovs3", "--ha")
    vmlab(s, "ovm", "pool", "ha", "on")
    vmlab(s, "ovm", "pool", "fencing", "off")
    vmlab(s, "sim", "partition", "ovs1,ovs2", "ovs3")
    vmlab(s, "sim", "advance", "60")
    vmlab(s, "sim", "heal")
    assert "CORRUPT" in vmlab(s, "ovm", "vm", "fsck", "db")


def test_ovm_errors_are_one_line_and_change_nothing(tmp_path, capsys):
    s = ["--state", str(tmp_path / "s.sqlite")]
    assert main(s + ["ovm", "pool", "create", "--servers", "2", "--memory", "2g"]) == 0
    capsys.readouterr()
    assert main(s + ["ovm", "vm", "create", "x", "--template", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "template 'nope'" in err
    assert main(s + ["ovm", "vm", "list"]) == 0
    assert capsys.readouterr().out.count("\n") == 1   # only the header: nothing was created
