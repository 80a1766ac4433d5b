"""Oracle VM layer benchmarks (issue 15): a 32-server pool with 20 guests per server.

The pool is built once (not timed: ~640 guest creations) and shared; each repetition
fails or evacuates a different server, so every timed call does the full work.
"""

import time

from vmlab.ovm import Manager

SERVERS, PER_SERVER = 32, 20
_POOL: dict = {}


def _pool() -> Manager:
    if "m" not in _POOL:
        t0 = time.perf_counter()
        m = Manager.create_pool("big", servers=SERVERS, memory_mib=4096, storage="iscsi")
        m.import_template("EL5", memory_mib=128, image_mib=64)
        for s in range(SERVERS):
            for g in range(PER_SERVER):
                m.create_from_template("EL5", f"g{s + 1}-{g}", server=f"ovs{s + 1}", ha=True)
        m.set_pool_ha(True)
        _POOL.update(m=m, setup_s=time.perf_counter() - t0, failed=iter(range(2, SERVERS + 1)),
                     evacuated=iter(range(SERVERS, 1, -1)))
    return _POOL["m"]


def bench_ha_server_crash_detect_restart():
    """target <= 1 s: one server of 32 crashes; its heartbeats time out, it is declared dead, its HA guests restart"""
    m = _pool()
    victim = f"ovs{next(_POOL['failed'])}"
    t0 = m.now_s
    m.fail_server(victim)
    m.advance(61)
    restarted = [e for e in m.events if e.kind == "restart" and e.time_s >= t0 and f"was on {victim}" in e.detail]
    return f"{len(restarted)} guests restarted, simulated detection {61 - 1:.0f} s (pool built in {_POOL['setup_s']:.0f} s, untimed)"


def bench_maintenance_evacuate_20_guests():
    """target <= 2 s: maintenance mode on one of 32 servers: 20 live migrations, at most 4 at a time"""
    m = _pool()
    server = f"ovs{next(_POOL['evacuated'])}"
    rep = m.maintenance(server, max_concurrent=4)
    return f"{len(rep.moves)} moved, {len(rep.refusals)} refused, simulated evacuation {rep.total_s:.1f} s"


def bench_pool_dashboard_update():
    """target <= 50 ms: one pool-dashboard refresh of 32 servers and 640 guests"""
    from vmlab.widgets.pool_dashboard import PoolDashboard
    m = _pool()
    if "dash" not in _POOL:
        _POOL["dash"] = PoolDashboard(m)
    dash = _POOL["dash"]
    t0 = time.perf_counter()
    dash.refresh()
    return f"{len(dash.bars.data['name'])} bars, {len(dash.dots.data['t'])} events ({(time.perf_counter() - t0) * 1e3:.1f} ms)"


def bench_ha_partition_fence_restart():
    """target <= 1 s: one server of 32 is cut off the network; it loses quorum and fences itself; its guests restart"""
    m = _pool()
    victim = f"ovs{next(_POOL['failed'])}"
    t0 = m.now_s
    m.isolate(victim)
    m.advance(91)     # 30 s network idle timeout -> quorum, fence; + 60 s disk heartbeat -> dead, restart
    fenced = any(e.kind == "fence" and e.server == victim and e.time_s >= t0 for e in m.events)
    restarted = [e for e in m.events if e.kind == "restart" and e.time_s >= t0 and f"was on {victim}" in e.detail]
    m.heal()
    return f"fenced: {fenced}, {len(restarted)} guests restarted"
