"""One call to predict a migration from the numbers an operator knows.

    predict_migration(memory_mib=4096, used_mib=1024, dirty_rate_mib_s=100, wws_mib=256,
                      bandwidth_mbps=10_000)            # QEMU defaults: 300 ms, 128 MiB/s
    print(rep.summary())                                # ... and what was assumed, with sources

`dirty_rate_mib_s` is how fast the guest stores to pages (page-granular writes
x 4 KiB per second); `wws_mib` is the region it writes in; `pattern` says how:
"sequential" (a loop walking its buffer, like most dirtying benchmarks) or
"uniform" (random pages). The report carries query-migrate's fields.
"""

from __future__ import annotations

from dataclasses import replace

from vmlab.errors import ConfigError
from vmlab.migration import defaults
from vmlab.migration.defaults import (DEFAULTS_TABLE, default_link_mbps,
                                      default_used_mib, link_cap_note)
from vmlab.migration.engine import run_migration
from vmlab.migration.faults import Fault
from vmlab.migration.image import MemoryImage, TargetImage
from vmlab.migration.link import Link
from vmlab.migration.policies import PAGE_SIZE, Policy, QemuPolicy, policy_by_name
from vmlab.migration.report import MigrationReport
from vmlab.migration.dirtying import Idle, SequentialScan, UniformWrites, WithGuestOS, Workload

__all__ = ["predict_migration", "dirtying_workload"]


def dirtying_workload(dirty_rate_mib_s: float, wws_mib: float, *, pattern: str = "sequential",
                      offset_pages: int = 0, cpu_share_needed: float = 1.0) -> Workload:
    """A guest storing `dirty_rate_mib_s` (x 4 KiB pages) into a `wws_mib` region.

    `cpu_share_needed`: 1.0 for a CPU-bound writer (auto-converge slows it in proportion); less for a
    paced writer that keeps its rate until its CPU share drops below that.
    """
    if not 0 < cpu_share_needed <= 1:
        raise ConfigError(f"cpu_share_needed={cpu_share_needed} is outside (0, 1]; 1.0 is a CPU-bound writer")
    if dirty_rate_mib_s < 0 or wws_mib < 0:
        raise ConfigError(f"dirty_rate_mib_s={dirty_rate_mib_s} and wws_mib={wws_mib} must be >= 0")
    if dirty_rate_mib_s == 0 or wws_mib == 0:
        return Idle()
    rate = dirty_rate_mib_s * 2**20 / PAGE_SIZE
    pages = max(1, int(round(wws_mib * 2**20 / PAGE_SIZE)))
    if pattern == "sequential":
        return SequentialScan(rate_pages_s=rate, region_pages=pages, offset=offset_pages,
                              cpu_share_needed=cpu_share_needed)
    if pattern == "uniform":
        return UniformWrites(rate_pages_s=rate, wws_pages=pages, offset=offset_pages, cpu_share_needed=cpu_share_needed)
    raise ConfigError(f"pattern={pattern!r} is not 'sequential' or 'uniform'")


def predict_migration(*, memory_mib: float, used_mib: float | None = None, policy: str | Policy = "qemu",
                      bandwidth_mbps: float | None = None, latency_ms: float = 0.1,
                      max_bandwidth_mib_s: float | None = 128.0, downtime_limit_ms: float = 300.0,
                      auto_converge: bool = False, postcopy: bool = False, dirty_rate_mib_s: float = 0.0,
                      wws_mib: float = 0.0, pattern: str = "sequential", workload: Workload | None = None,
                      writer_cpu_share: float = 1.0, seed: int = 0, max_time_s: float = 600.0,
                      fault: Fault | None = None, accelerator: str = "kvm") -> MigrationReport:
    """Predict one migration of a standalone guest; returns the MigrationReport.

    QEMU knobs (max_bandwidth_mib_s, downtime_limit_ms, auto_converge, postcopy)
    apply when policy is "qemu". What the caller leaves out is assumed, and the
    report says so (`report.assumptions`, printed by `summary()`):
    `used_mib` (RAM holding data; the rest is zero pages) defaults to a minimal
    Linux guest's non-zero memory plus the working set; `bandwidth_mbps` (the
    link) defaults to the slowest Ethernet speed from 10 Gbit/s that carries
    max-bandwidth. A named link slower than max-bandwidth is used as given, with
    a one-line "capped:" note. `writer_cpu_share`: the CPU share the guest's
    writer needs to keep its rate (1.0: CPU-bound, any throttle slows it; a
    paced writer needs less and shrugs off auto-converge until then). Sender ceiling, setup and switchover costs are
    the QemuPolicy's calibrated constants (datasets/tables/qemu_migration_calibrated.csv).
    `accelerator` ("kvm" or "tcg") of a policy given by name: under TCG each bitmap sync waits for
    the vCPU, through any auto-converge sleep (softmmu/physmem.c tcg_log_global_after_sync).
    """
    if accelerator not in ("kvm", "tcg"):
        raise ConfigError(f"accelerator={accelerator!r} is not 'kvm' or 'tcg'; QEMU's -accel for the guest")
    knobs = dict(max_bandwidth_mib_s=max_bandwidth_mib_s, downtime_limit_ms=downtime_limit_ms,
                 auto_converge=auto_converge, postcopy=postcopy)
    if policy == "qemu":
        knobs["sync_waits_for_vcpu"] = accelerator == "tcg"
    pol = _policy(policy, **knobs)
    wws = min(wws_mib, memory_mib)
    assumed: list[str] = []
    if used_mib is None:
        used_mib = default_used_mib(memory_mib, wws)
        assumed.append(f"assumed: {used_mib:.0f} of {memory_mib:g} MiB non-zero ({memory_mib - used_mib:.0f} MiB "
                       f"never written, sent as 9-byte zero-page records): a minimal Linux guest's "
                       f"{defaults.GUEST_BASE_MIB:g} MiB + {defaults.GUEST_PER_RAM:.1%} of RAM + "
                       f"{defaults.GUEST_WSET_SHARE:.0%} of the working set "
                       f"(fit on real QEMU runs, {DEFAULTS_TABLE}); pass used_mib= to say otherwise")
    cap = pol.max_bandwidth_mib_s
    if bandwidth_mbps is None:
        bandwidth_mbps = default_link_mbps(cap)
        assumed.append(f"assumed: a {bandwidth_mbps / 1000:g} Gbit/s link (fast enough for max-bandwidth "
                       f"{cap:g} MiB/s); pass bandwidth_mbps= for yours" if cap else
                       f"assumed: a {bandwidth_mbps / 1000:g} Gbit/s link; pass bandwidth_mbps= for yours")
    else:
        note = link_cap_note(cap, bandwidth_mbps)
        if note:
            assumed.append(note)
    if isinstance(pol, QemuPolicy):
        assumed.append(_qemu_costs_line(pol))
    src = _guest_image(memory_mib, used_mib, assumed)
    wl = workload if workload is not None else _with_guest_os(
        dirtying_workload(dirty_rate_mib_s, wws, pattern=pattern, cpu_share_needed=writer_cpu_share),
        src, assumed)
    rep = run_migration(src, TargetImage(src.n_pages), policy=pol,
                        link=Link(bandwidth_mbps=bandwidth_mbps, latency_ms=latency_ms), workload=wl, seed=seed,
                        max_time_s=max_time_s, fault=fault, verify=False)
    return replace(rep, assumptions=tuple(assumed))


def _guest_image(memory_mib: float, used_mib: float, assumed: list[str]) -> MemoryImage:
    """A minimal Linux guest's memory: `used_mib` of data, a dense block of it at the top of RAM."""
    top_mib = min(used_mib, defaults.default_top_mib(memory_mib))
    assumed.append(f"assumed: {top_mib:.1f} MiB of the data in a dense block at the top of RAM (the struct page "
                   f"array, RAM/64, + {defaults.GUEST_TOP_EXTRA_MIB:g} MiB: memblock allocates top-down), the rest "
                   f"in the low part of RAM, {defaults.GUEST_LOW_DENSITY:.0%} of its pages data; the top block is "
                   f"the end of the first pass ({DEFAULTS_TABLE})")
    used_fraction = min(1.0, max(0.0, used_mib / memory_mib))
    return MemoryImage.from_mib(memory_mib, used_fraction=used_fraction, layout="linux", top_mib=top_mib,
                                low_density=defaults.GUEST_LOW_DENSITY)


def _with_guest_os(wl: Workload, src: MemoryImage, assumed: list[str]) -> Workload:
    """The user's workload plus the guest OS's own hot pages, at the start of the top-of-RAM block."""
    n_pages = src.n_pages
    hot = min(defaults.GUEST_HOT_PAGES, n_pages)
    if hot == 0 or defaults.GUEST_HOT_RATE_PAGES_S == 0:
        return wl
    top = src.top_pages
    assumed.append(f"assumed: the guest OS re-dirties {hot} hot pages ({hot * PAGE_SIZE / 2**20:.1f} MiB) at "
                   f"{defaults.GUEST_HOT_RATE_PAGES_S:g} stores/s besides the workload (timers, scheduler, stacks: "
                   f"fit on real QEMU runs, {DEFAULTS_TABLE}); pass workload= to give every write yourself")
    return WithGuestOS(inner=wl, hot_pages=hot, hot_rate_pages_s=defaults.GUEST_HOT_RATE_PAGES_S,
                       hot_offset=max(0, n_pages - max(top, hot)))


def _policy(policy: str | Policy, **qemu_knobs) -> Policy:
    if not isinstance(policy, str):
        return policy
    return policy_by_name(policy, **(qemu_knobs if policy == "qemu" else {}))


_SYNC_WAIT = {True: "TCG: it waits out a throttled vCPU",
              False: "KVM: no wait for the vCPUs; accelerator='tcg' for TCG's"}


def _qemu_costs_line(p: QemuPolicy) -> str:
    rec = PAGE_SIZE + p.page_header_bytes
    ceiling = rec / (p.normal_page_cpu_us * 1e-6) / 2**20
    return (f"assumed: sender ceiling {ceiling:.0f} MiB/s of data pages ({p.normal_page_cpu_us:g} us/page, "
            f"{p.zero_page_scan_us:g} us/zero page), setup {p.setup_ms:g} ms, switchover {p.stop_overhead_ms:g} ms "
            f"(guest stop + device state) + {p.final_page_cpu_us:g} us/page unthrottled "
            f"({p.final_new_page_us:g} us for a page never sent before, past the first {p.final_buffer_pages:,}), "
            f"target {p.target_page_us:g} us/page + {p.target_region_fault_ms:g} ms per 2 MiB huge page it faults in, "
            f"bitmap sync {p.sync_ms:g} ms ({_SYNC_WAIT[p.sync_waits_for_vcpu]}) "
            f"(measured on or fit to real QEMU 7.2 runs under TCG, {DEFAULTS_TABLE})")
