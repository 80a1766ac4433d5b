"""Foundation benchmarks: booting, creating guests, the dashboard, the CLI state file."""

from __future__ import annotations

from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.config import virt_install
from vmlab.toolstack.xm import Toolstack

_BIG: dict = {}


def _big_host() -> Toolstack:
    if "xm" not in _BIG:
        hv = Hypervisor(Host(HostSpec(name="big", pcpus=16, memory_mib=65536)))
        xm = Toolstack(hv)
        for i in range(32):
            xm.create(virt_install(name=f"vm{i}", ram=1536))
        _BIG["xm"] = xm
    return _BIG["xm"]


def bench_create_32_guests_on_64gib_host():
    """target: interactive (< 5 s): boot a 64 GiB host and create 32 guests of 1.5 GiB"""
    _BIG.clear()
    _big_host()
    return "32 guests"


def _dash():
    from vmlab.widgets.dashboard import DomainDashboard
    return _BIG.get("dash") or _BIG.setdefault("dash", DomainDashboard(_big_host()))


def bench_dashboard_update_32_guests_64gib():
    """target <= 50 ms: DomainDashboard.refresh() after a change, 32 guests on a 64 GiB host (16.7 M frames)"""
    dash = _dash()
    dash.xm.hv.memory.version += 1  # as if a guest had just been created or ballooned: no cached runs
    dash.refresh()
    return f"{len(dash.source.data['x0'])} rectangles"


def bench_dashboard_mem_set_click_32_guests_64gib():
    """target <= 50 ms + the balloon: one mem-set click (balloon 512 MiB down or up, then refresh)"""
    dash = _dash()
    dash.target.value = "vm7"
    dash.mem_target.value = 1024 if dash.xm.lookup("vm7").memory_mib > 1024 else 1536
    dash.mem_set()
    return dash.message.value[-10:]


def bench_state_file_round_trip_64gib():
    """target <= 0.3 s: save and load the 64 GiB host through the CLI's state encoding (devices not rebuilt)"""
    from vmlab.toolstack.pool import ServerPool
    from vmlab.toolstack.state import dump_pool, load_pool
    pool = ServerPool()
    xm = _big_host()
    pool.servers[xm.hv.host.name] = xm.hv
    blob = dump_pool(pool)
    load_pool(blob, devices=False)  # a read-only verb's load; a writing verb adds the device rebuild
    return f"{len(blob) / 1024:.0f} KiB"


def bench_state_file_load_with_devices_64gib():
    """note: load the 64 GiB host and rebuild its 64 devices (what a writing CLI verb pays; memory expands on first write)"""
    from vmlab.toolstack.pool import ServerPool
    from vmlab.toolstack.state import dump_pool, load_pool
    pool = ServerPool()
    xm = _big_host()
    pool.servers[xm.hv.host.name] = xm.hv
    blob = _BIG.get("blob") or _BIG.setdefault("blob", dump_pool(pool))
    load_pool(blob)
    return "32 guests reconnected"


def _big_state_file() -> str:
    """A CLI state file holding the 64 GiB host with 32 guests (made once per run)."""
    import os
    import tempfile

    from vmlab.toolstack.pool import ServerPool
    from vmlab.toolstack.state import StateFile
    if "state" not in _BIG:
        path = os.path.join(tempfile.mkdtemp(prefix="vmlab-bench-"), "state.sqlite")
        with StateFile(path).transaction() as pool:
            pool.servers.clear()
            xm = _big_host()
            pool.servers[xm.hv.host.name] = xm.hv
        _BIG["state"] = path
    return _BIG["state"]


def _cli(*argv: str) -> str:
    """Run `vmlab --state <big> ARGV` in a fresh interpreter; note its peak RSS.

    Peak RSS is the child's own VmHWM (Linux /proc): getrusage's ru_maxrss would
    carry over the parent's peak across fork.
    """
    import subprocess
    import sys
    code = ("import sys; from vmlab.toolstack.cli import main; rc = main(sys.argv[1:]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
            "print(hwm[0].split()[1] if hwm else 0, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "--state", _big_state_file(), *argv],
                       capture_output=True, text=True, check=True)
    return f"{int(r.stderr.split()[-1]) / 1024:.0f} MiB peak RSS (interpreter start included)"


def bench_cli_xm_list_64gib_32_guests():
    """target <= 0.25 s, <= 100 MiB: `vmlab xm list` on the 64 GiB host's state file (fresh process)"""
    return _cli("xm", "list")


def bench_cli_xm_pause_unpause_64gib_32_guests():
    """note: two writing CLI calls (`xm pause vm3`, `xm unpause vm3`) on the 64 GiB host's state file"""
    _cli("xm", "pause", "vm3")
    return _cli("xm", "unpause", "vm3")


def bench_cli_xm_info_64gib_32_guests():
    """target <= 0.25 s, <= 100 MiB: `vmlab xm info` on the 64 GiB host's state file (fresh process)"""
    return _cli("xm", "info")
