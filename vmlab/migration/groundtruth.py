"""vmlab's migration model against the project's real QEMU runs (datasets/measurements/qemu_migration).

Each real run (`vmlab.measurements.QemuRun`) is turned into the inputs a student would give
`predict_migration` -- guest RAM, working set, dirty rate and pattern, max-bandwidth,
downtime-limit, auto-converge -- and nothing else: the non-zero share of RAM, the sender's
ceiling, setup and switchover costs come from the calibrated defaults. The runs went over TCP
loopback, so the link is `LOOPBACK_MBPS` (faster than any sender ceiling seen; the sender's CPU,
not the link, bounds them).

The calibration split is fixed: a run is held out when the first byte of sha256(run_id) is
divisible by 3 (`held_out`); the constants are fitted on the others (tools/calibrate_migration.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from vmlab import measurements as ms
from vmlab.errors import DatasetError
from vmlab.migration.policies import PAGE_SIZE

__all__ = ["LOOPBACK_MBPS", "DIRTIER_CPU_SHARE", "held_out", "run_inputs", "predict_run", "RunComparison",
           "compare_runs", "error_summary", "config_of", "downtime_ratio", "repeat_noise", "real_downtimes",
           "repeat_summary"]

LOOPBACK_MBPS = 40_000.0  # TCP over loopback on the measuring host: above every sender ceiling in the runs
# The measured dirtier is paced (it sleeps between 10 ms slices): under QEMU's CPU throttle it keeps its
# rate down to this CPU share, then slows in proportion (calibrated from the auto-converge traces,
# datasets/tables/qemu_migration_calibrated.csv).
DIRTIER_CPU_SHARE = 0.1


def held_out(run_id: str) -> bool:
    """The fixed validation split: sha256(run_id)[0] % 3 == 0 (about a third of the runs)."""
    return hashlib.sha256(run_id.encode()).digest()[0] % 3 == 0


def run_inputs(run) -> dict:
    """`predict_migration` keyword arguments for a real run: only what a student knows.

    The dirty rate is the dirtier's own measurement just before `migrate` (what a student
    would measure first); the requested rate when the run has none.
    """
    rate = run.rate_before_pages_s if run.rate_before_pages_s is not None else float(run.rate_req_pages_s)
    return dict(memory_mib=run.ram_mib, wws_mib=run.wset_mib, dirty_rate_mib_s=rate * PAGE_SIZE / 2**20,
                pattern="uniform" if run.pattern == "rand" else "sequential",
                max_bandwidth_mib_s=run.max_bandwidth_mib_s, downtime_limit_ms=run.downtime_limit_ms,
                auto_converge=run.auto_converge, max_time_s=run.timeout_s, bandwidth_mbps=LOOPBACK_MBPS,
                writer_cpu_share=DIRTIER_CPU_SHARE, accelerator=run.accel)


def predict_run(run, *, policy=None, used_mib: float | None = None, seed: int = 0,
                writer_cpu_share: float | None = None):
    """The model's MigrationReport for this real run (policy: a QemuPolicy to use instead of the default)."""
    from vmlab.migration.predict import predict_migration
    kw = run_inputs(run)
    if writer_cpu_share is not None:
        kw["writer_cpu_share"] = writer_cpu_share
    if policy is not None:
        kw["policy"] = policy.with_(max_bandwidth_mib_s=run.max_bandwidth_mib_s, downtime_limit_ms=run.downtime_limit_ms,
                                    auto_converge=run.auto_converge, sync_waits_for_vcpu=run.accel == "tcg")
    return predict_migration(used_mib=used_mib, seed=seed, **kw)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunComparison:
    """One real run next to the model's prediction of it."""

    run_id: str
    held_out: bool
    real_converged: bool
    model_converged: bool
    real_total_ms: float
    model_total_ms: float
    real_bytes: int
    model_bytes: int
    real_downtime_ms: float | None
    model_downtime_ms: float | None
    real_syncs: int
    model_syncs: int
    real_throttle_pct: int
    model_throttle_pct: int
    model_downtime_range_ms: tuple[float, float] | None = None   # when a few pages decided it (report notes)

    @property
    def call_right(self) -> bool:
        return self.real_converged == self.model_converged

    @property
    def time_error(self) -> float:
        return abs(self.model_total_ms - self.real_total_ms) / self.real_total_ms

    @property
    def bytes_error(self) -> float:
        return abs(self.model_bytes - self.real_bytes) / self.real_bytes

    @property
    def downtime_ratio(self) -> float | None:
        """max(model/real, real/model) with a 1 ms floor (QEMU reports whole ms); None unless both completed."""
        if self.real_downtime_ms is None or self.model_downtime_ms is None:
            return None
        return downtime_ratio(self.real_downtime_ms, self.model_downtime_ms)

    @property
    def downtime_in_range(self) -> bool | None:
        """Real within 2x of the model's downtime, or of anywhere in its stated range (1 ms floor)."""
        if self.downtime_ratio is None:
            return None
        lo, hi = self.model_downtime_range_ms or (self.model_downtime_ms, self.model_downtime_ms)
        real = max(1.0, self.real_downtime_ms)
        return max(1.0, lo) / 2 <= real <= max(1.0, hi) * 2


def compare_runs(runs, *, policy=None, used_mib_of=None, writer_cpu_share: float | None = None) -> list[RunComparison]:
    """Predict every usable run (outcome completed or cancelled_timeout) and pair it with reality.

    `used_mib_of(run)` overrides the default non-zero memory (e.g. the run's own count, for a
    by-hand mapping); None uses predict_migration's default.
    """
    out = []
    for r in runs:
        if r.outcome not in ("completed", "cancelled_timeout"):
            continue
        rep = predict_run(r, policy=policy, used_mib=used_mib_of(r) if used_mib_of else None,
                          writer_cpu_share=writer_cpu_share)
        done = rep.status == "completed"
        out.append(RunComparison(
            run_id=r.run_id, held_out=held_out(r.run_id), real_converged=r.outcome == "completed",
            model_converged=done, real_total_ms=float(r.total_time_ms),
            model_total_ms=rep.total_time_ms if done else min(rep.total_time_ms, r.timeout_s * 1000),
            real_bytes=int(r.transferred_bytes), model_bytes=_bytes_at(rep, r.total_time_ms) if not done else
            rep.transferred_bytes, real_downtime_ms=None if r.downtime_ms is None else float(r.downtime_ms),
            model_downtime_ms=rep.downtime_ms if done else None, real_syncs=int(r.dirty_sync_count),
            model_syncs=_syncs_at(rep, r.total_time_ms) if not done else rep.dirty_sync_count,
            real_throttle_pct=int(r.max_throttle_pct), model_throttle_pct=int(rep.cpu_throttle_pct),
            model_downtime_range_ms=rep.downtime_range_ms))
    return out


def _bytes_at(rep, t_ms: float) -> int:
    """Bytes the model had sent by `t_ms` (a cancelled run is compared at its cancel time)."""
    total = 0
    for rd in rep.rounds:
        if rd.start_ms + rd.duration_ms <= t_ms:
            total += rd.bytes_sent
        elif rd.start_ms < t_ms:
            total += int(rd.bytes_sent * (t_ms - rd.start_ms) / max(rd.duration_ms, 1e-9))
    return total


def _syncs_at(rep, t_ms: float) -> int:
    return 1 + sum(1 for rd in rep.rounds if rd.phase == "precopy" and rd.start_ms + rd.duration_ms <= t_ms)


def error_summary(rows: list[RunComparison]) -> dict:
    """The goals' numbers for a set of compared runs."""
    if not rows:
        return {"runs": 0}
    t = np.array([r.time_error for r in rows])
    done = [r for r in rows if r.real_converged and r.model_converged]
    b = np.array([r.bytes_error for r in done]) if done else np.zeros(1)
    d = [r.downtime_ratio for r in done if r.downtime_ratio is not None]
    sync = np.array([abs(r.model_syncs - r.real_syncs) for r in rows])
    thr = [r for r in rows if r.real_throttle_pct or r.model_throttle_pct]
    return {
        "runs": len(rows), "calls_right": sum(r.call_right for r in rows),
        "wrong_calls": [r.run_id for r in rows if not r.call_right],
        "time_err_median": float(np.median(t)), "time_err_max": float(t.max()),
        "time_err_max_run": rows[int(t.argmax())].run_id,
        "bytes_err_median": float(np.median(b)), "bytes_err_max": float(b.max()),
        "downtime_ratio_median": float(np.median(d)) if d else None,
        "downtime_ratio_max": float(max(d)) if d else None,
        "downtime_within_2x": sum(1 for x in d if x <= 2.0), "downtimes_compared": len(d),
        "downtime_in_stated_range": sum(1 for r in done if r.downtime_in_range),
        "downtime_ratio_max_run": max(((x, r.run_id) for r in done if (x := r.downtime_ratio) is not None),
                                      default=(None, None))[1],
        "sync_abs_err_median": float(np.median(sync)), "sync_abs_err_max": int(sync.max()),
        "throttle_abs_err_max": max((abs(r.model_throttle_pct - r.real_throttle_pct) for r in thr), default=0),
    }


def downtime_ratio(a_ms: float, b_ms: float) -> float:
    """max(a/b, b/a) with a 1 ms floor on both (QEMU reports downtime in whole ms)."""
    a, b = max(1.0, a_ms), max(1.0, b_ms)
    return max(a / b, b / a)


def config_of(run) -> tuple:
    """A run's inputs: two runs with the same are repeats of one configuration (the model gives one answer)."""
    return (run.ram_mib, run.wset_mib, run.pattern, run.rate_req_pages_s, run.tlb_flush, run.max_bandwidth_mib_s,
            run.downtime_limit_ms, run.auto_converge)


def repeat_noise(observed, model_ms: dict) -> dict:
    """How well one real run's downtime predicts another's, next to the model, on the configurations
    measured more than once.

    `observed`: (configuration, label, real downtime ms) of completed runs; `model_ms`: configuration ->
    the model's downtime. For every run of a configuration with two or more runs (and a model answer):
    is the median of the *other* runs within 2x of it (`repeat_within_2x`), is the model
    (`model_within_2x`), and how many could the best single number per configuration reach, chosen
    with hindsight (`best_constant_within_2x`: the ceiling of any deterministic model on these runs)."""
    groups: dict = {}
    for cfg, label, dt in observed:
        groups.setdefault(cfg, []).append((label, float(dt)))
    n = rep = mod = best = 0
    configs = []
    for cfg, runs in groups.items():
        if len(runs) < 2 or model_ms.get(cfg) is None:
            continue
        dts = [d for _, d in runs]
        for i, d in enumerate(dts):
            rep += downtime_ratio(float(np.median(dts[:i] + dts[i + 1:])), d) <= 2.0
        mod += sum(downtime_ratio(model_ms[cfg], d) <= 2.0 for d in dts)
        # a number within 2x of d lies in [d/2, 2d]: the best one starts one of these intervals
        best += max(sum(downtime_ratio(c, d) <= 2.0 for d in dts) for c in (max(1.0, d / 2) for d in dts))
        n += len(dts)
        configs.append({"runs": [lb for lb, _ in runs], "downtime_ms": dts, "model_downtime_ms": model_ms[cfg]})
    return {"runs": n, "configs": len(configs), "repeat_within_2x": int(rep), "model_within_2x": int(mod),
            "best_constant_within_2x": int(best), "groups": configs}


def real_downtimes(runs, fresh, *, root=None) -> dict:
    """(configuration, label, downtime ms) of every completed real run of the grid and the fresh runs
    (`runs`, `fresh`), the target trace's re-runs and the grid on a loaded host (datasets/measurements):
    {"quiet": on an otherwise idle host, "loaded": the loaded host's}."""
    cfg = {r.run_id: config_of(r) for r in list(runs) + list(fresh)}
    quiet = [(config_of(r), r.run_id, r.downtime_ms) for r in list(runs) + list(fresh) if r.outcome == "completed"]
    quiet += [(cfg[t["run_id"]], f"{t['run_id']}/trace{int(t['rep'])}", t["downtime_ms"])
              for t in ms.load_target_trace(root=root) if t["outcome"] == "completed" and t["run_id"] in cfg]
    try:
        loaded = ms.load_qemu_runs(root=root, dataset="qemu_migration_loaded")
    except DatasetError:
        loaded = []
    return {"quiet": quiet, "loaded": [(config_of(r), f"{r.run_id}/loaded", r.downtime_ms) for r in loaded
                                       if r.outcome == "completed"]}


def repeat_summary(observed: dict, rows, runs) -> dict:
    """`repeat_noise` of `real_downtimes` against the model's downtimes in `rows` (compare_runs of `runs`),
    on the quiet host's runs and on all of them."""
    by_id = {r.run_id: r.model_downtime_ms for r in rows}
    model = {config_of(r): by_id.get(r.run_id) for r in runs}
    return {"unloaded_host": repeat_noise(observed["quiet"], model),
            "with_loaded_host": repeat_noise(observed["quiet"] + observed["loaded"], model)}
