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


def bench_dashboard_update_32_guests_64gib():
    """target <= 50 ms: one DomainDashboard.refresh() with 32 guests on a 64 GiB host (16.7 M frames)"""
    from widgets.dashboard import DomainDashboard
    xm = _big_host()
    dash = _BIG.get("dash") or _BIG.setdefault("dash", DomainDashboard(xm))
    dash.refresh()
    return f"{len(dash.source.data['x0'])} rectangles"


def bench_state_file_round_trip_64gib():
    """target: well under 1 s: save and load the 64 GiB host through the CLI's state encoding"""
    from vmlab.toolstack.pool import ServerPool
    from vmlab.toolstack.state import dump_pool, load_pool
    pool = ServerPool()
    xm = _big_host()
    pool.servers[xm.hv.host.name] = xm.hv
    blob = dump_pool(pool)
    load_pool(blob)
    return f"{len(blob) / 1024:.0f} KiB"
