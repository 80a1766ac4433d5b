"""Text views of the Manager's inventory (what `vmlab ovm ... list` prints; deterministic)."""

from __future__ import annotations

from vmlab.ovm.network import vlans_on

__all__ = ["servers_text", "guests_text", "repos_text", "pool_text"]


def servers_text(m) -> str:
    rows = [f"{'Server':8s} {'Node':>4s} {'State':11s} {'Roles':18s} {'Free MiB':>8s} {'VLANs':10s} Guests"]
    for s in m.servers.values():
        hv = m.pool.servers[s.name]
        guests = sorted(g.name for g in m.guests.values() if g.server == s.name and g.state == "running")
        vlans = ",".join(str(v) for v in sorted(vlans_on(hv))) or "-"
        rows.append(f"{s.name:8s} {s.node:4d} {s.state.value:11s} {s.roles_text:18s} {m.free_mib(s.name):8d} "
                    f"{vlans:10s} {' '.join(guests) or '-'}")
    return "\n".join(rows)


def guests_text(m) -> str:
    rows = [f"{'Guest':12s} {'State':8s} {'Server':8s} {'MiB':>5s} {'vCPU':>4s} {'HA':3s} {'VLAN':>4s} {'Repo':12s} Origin"]
    for g in sorted(m.guests.values(), key=lambda g: g.name):
        rows.append(f"{g.name:12s} {g.state:8s} {g.server or '-':8s} {g.memory_mib:5d} {g.vcpus:4d} "
                    f"{'on' if g.ha else 'off':3s} {g.vlan if g.vlan is not None else '-':>4} {g.repo:12s} {g.origin}")
    return "\n".join(rows)


def repos_text(m) -> str:
    rows = []
    for r in m.repos.values():
        where = "shared by the pool" if r.shared else f"local to {r.owner}"
        rows.append(f"{r.name:14s} {r.mount:24s} {r.kind.value:6s} {where:20s} {r.cluster}")
    return "\n".join(rows)


def pool_text(m) -> str:
    head = (f"pool {m.pool.name}: master {m.master}, HA {'on' if m.ha_enabled else 'off'}, fencing "
            f"{'on' if m.fencing else 'off'}, link {m.pool.link.bandwidth_mbps:g} Mbit/s, t={m.now_s:.1f} s")
    return "\n".join([head, servers_text(m), "", repos_text(m)])
