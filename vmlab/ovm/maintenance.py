"""Maintenance mode: the Manager live-migrates every guest off a server, at most N at a time.

The N concurrent migrations share the pool's migration link: each sees link / N (a
wave of k < N migrations sees link / k). A wave starts when the previous one has
finished, so the evacuation takes the sum over waves of each wave's slowest migration.
What cannot move (local storage, no server with the memory, VLAN missing) is refused
before anything moves, with one line per guest, and stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError
from vmlab.errors import MigrationError
from vmlab.ovm.errors import Refused
from vmlab.ovm.inventory import ServerState
from vmlab.ovm.network import vlans_on

__all__ = ["MaintenanceOps", "Move", "EvacuationReport"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Move:
    guest: str
    target: str
    wave: int
    start_s: float          # from the start of the evacuation
    seconds: float
    downtime_ms: float
    share_mbps: float


@dataclass(frozen=True, kw_only=True, slots=True)
class EvacuationReport:
    server: str
    max_concurrent: int
    moves: tuple[Move, ...]
    refusals: tuple[str, ...]
    total_s: float

    def __str__(self) -> str:
        lines = [f"maintenance {self.server}: {len(self.moves)} guests moved, at most {self.max_concurrent} at a time, "
                 f"in {self.total_s:.1f} s; {len(self.refusals)} refused"]
        lines += [f"  wave {m.wave}  {m.guest:12s} -> {m.target:8s} at {m.start_s:6.1f} s, {m.seconds:6.2f} s over "
                  f"{m.share_mbps:5.0f} Mbit/s, downtime {m.downtime_ms:5.1f} ms" for m in self.moves]
        lines += [f"  refused: {r}" for r in self.refusals]
        return "\n".join(lines)


class MaintenanceOps:
    """Mixed into Manager."""

    def _refusal(self, g, server: str, planned) -> tuple[str | None, str | None]:
        """(target, None) or (None, one-line reason) for moving guest `g` off `server`."""
        repo = self.repos[g.repo]
        if not repo.shared:
            return None, (f"{g.name}: image on {repo.kind.value} storage of {repo.owner}: a guest on local storage "
                          "cannot live-migrate; shut it down or clone it into a shared repository")
        target = self.place(g, exclude={server}, planned=planned)
        if target is None:
            ups = [s for s in self.servers.values() if s.name != server and s.state is ServerState.UP]
            if g.vlan is not None and not any(g.vlan in vlans_on(self.pool.servers[s.name]) for s in ups):
                return None, f"{g.name}: no other server has VLAN {g.vlan}; add the VLAN to a server first"
            return None, f"{g.name}: no other server has {g.memory_mib} MiB free (with VLAN {g.vlan})" if g.vlan else \
                f"{g.name}: no other server has {g.memory_mib} MiB free; free memory or add a server"
        err = self.migration_refusal(g, target, planned)
        return (None, str(err)) if err is not None else (target, None)

    def maintenance(self, server: str, *, max_concurrent: int = 2) -> EvacuationReport:
        """Put `server` in maintenance: evacuate its guests by live migration, then run no new guests there."""
        rec = self.server(server)
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ConfigError(f"max_concurrent={max_concurrent!r}: at least one migration must run at a time; use 1..8")
        if rec.state is not ServerState.UP:
            raise Refused(f"server {server} is {rec.state.value}; only a running server can be put in maintenance")
        planned: dict[str, int] = {}
        plan, refusals = [], []
        for g in sorted((g for g in self.guests.values() if g.server == server and g.state == "running"),
                        key=lambda g: g.name):
            target, why = self._refusal(g, server, planned)
            if why:
                refusals.append(why)
                continue
            planned[target] = planned.get(target, 0) + g.memory_mib
            plan.append((g.name, target))
        moves, total = self._run_waves(plan, max_concurrent, refusals)
        self.servers[server] = self.servers[server].with_(state=ServerState.MAINTENANCE)
        report = EvacuationReport(server=server, max_concurrent=max_concurrent, moves=tuple(moves),
                                  refusals=tuple(refusals), total_s=total)
        self.log("maintenance", server=server, detail=f"evacuated {len(moves)} guests in {total:.1f} s, "
                 f"{len(refusals)} refused")
        return report

    def _run_waves(self, plan, n: int, refusals: list[str]) -> tuple[list[Move], float]:
        moves, total, start = [], 0.0, self.now_s
        for w, i in enumerate(range(0, len(plan), n), start=1):
            wave = plan[i:i + n]
            share = self.pool.link.bandwidth_mbps / len(wave)
            longest = 0.0
            for name, target in wave:
                try:
                    rep = self.migrate(name, target, bandwidth_mbps=share)
                except (MigrationError, ConfigError) as e:
                    refusals.append(f"{name}: migration failed: {e}")
                    continue
                secs = rep.total_time_ms / 1000
                longest = max(longest, secs)
                moves.append(Move(guest=name, target=target, wave=w, start_s=round(total, 3), seconds=secs,
                                  downtime_ms=rep.downtime_ms, share_mbps=share))
            total += longest
            self.now_s = start + total
        return moves, total

    def leave_maintenance(self, server: str) -> None:
        rec = self.server(server)
        if rec.state is not ServerState.MAINTENANCE:
            raise Refused(f"server {server} is {rec.state.value}, not in maintenance")
        self.servers[server] = rec.with_(state=ServerState.UP)
