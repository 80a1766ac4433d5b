"""The naive migration models simulators use, next to vmlab's, for teaching.

- CloudSim (PowerDatacenter): migration time = RAM / (bandwidth / 2) - half the
  host's bandwidth, no dirty pages, no downtime (REFERENCE.md §6, [V]).
- SimGrid's VM live-migration model: QEMU-like pre-copy where the memory
  dirtied during a stage is the dirty rate x the stage's time, capped at a
  working set of 90 % of RAM; stop when the remainder fits in bandwidth x
  max_downtime (default 30 ms) (REFERENCE.md §6, [V]). It has no notion that a
  rewritten page counts once, so it over-counts re-dirtying of a small set and
  never saturates below the 90 % cap.

`vmlab.migration.explore.compare_models` puts them next to vmlab's engine.
Both ignore what vmlab models: distinct pages, zero pages, rate limits lifted
at switchover, policy caps (Xen's 30 rounds), auto-converge.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError

__all__ = ["BaselineResult", "cloudsim_migration", "simgrid_precopy"]

SIMGRID_DEFAULT_MAX_DOWNTIME_S = 0.03
SIMGRID_WORKING_SET_FRACTION = 0.9


@dataclass(frozen=True, kw_only=True, slots=True)
class BaselineResult:
    model: str
    total_time_s: float
    downtime_ms: float
    transferred_bytes: int
    rounds: int
    converged: bool = True


def cloudsim_migration(memory_mib: float, bandwidth_mbps: float) -> BaselineResult:
    """CloudSim: RAM / (bandwidth / 2); zero downtime, RAM sent once."""
    if memory_mib <= 0 or bandwidth_mbps <= 0:
        raise ConfigError(f"memory_mib={memory_mib} and bandwidth_mbps={bandwidth_mbps} must be > 0")
    ram = memory_mib * 2**20
    return BaselineResult(model="CloudSim", total_time_s=ram / (bandwidth_mbps * 1e6 / 8 / 2), downtime_ms=0.0,
                          transferred_bytes=int(ram), rounds=1)


def simgrid_precopy(memory_mib: float, bandwidth_mbps: float, dirty_rate_mib_s: float, *,
                    max_downtime_s: float = SIMGRID_DEFAULT_MAX_DOWNTIME_S,
                    working_set_fraction: float = SIMGRID_WORKING_SET_FRACTION,
                    max_rounds: int = 1000) -> BaselineResult:
    """SimGrid-style pre-copy: dirtied = rate x stage time, capped at 90 % of RAM."""
    if memory_mib <= 0 or bandwidth_mbps <= 0 or dirty_rate_mib_s < 0:
        raise ConfigError("memory_mib and bandwidth_mbps must be > 0 and dirty_rate_mib_s >= 0")
    bw = bandwidth_mbps * 1e6 / 8
    ram = memory_mib * 2**20
    cap = working_set_fraction * ram
    threshold = bw * max_downtime_s
    remaining, t, sent, rounds = ram, 0.0, 0.0, 0
    while rounds < max_rounds:
        stage = remaining / bw
        t += stage
        sent += remaining
        rounds += 1
        remaining = min(dirty_rate_mib_s * 2**20 * stage, cap)
        if remaining <= threshold:
            break
    converged = remaining <= threshold
    down = remaining / bw
    return BaselineResult(model="SimGrid", total_time_s=t + down, downtime_ms=down * 1000,
                          transferred_bytes=int(sent + remaining), rounds=rounds + 1, converged=converged)
