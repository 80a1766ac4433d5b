"""MigrationReport: what happened, as rounds, as QEMU's query-migrate, and as text.

One `RoundRecord` per bitmap sync interval ("round": a Xen pass, or the stretch
between two QEMU dirty syncs), plus the stop-and-copy and post-copy phases as
their own rows. `query_migrate()` returns QEMU's QMP field names
(qapi/migration.json MigrationInfo / MigrationStats); `info_migrate()` prints
them the way HMP's `info migrate` does (monitor/hmp-cmds.c, QEMU 7.x layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["RoundRecord", "MigrationReport", "STATUSES"]

STATUSES = ("setup", "active", "postcopy-active", "completed", "failed", "cancelled")


@dataclass(frozen=True, kw_only=True, slots=True)
class RoundRecord:
    round: int                 # 1-based; equals dirty-sync-count at the round's start
    phase: str                 # "precopy", "stop-and-copy", "postcopy"
    start_ms: float
    duration_ms: float
    pages_sent: int            # normal + zero pages sent in the round
    normal_pages: int
    zero_pages: int
    bytes_sent: int            # on the wire: the pages' records, and the device state in the stop round
    pages_skipped: int         # Xen 3: re-dirtied during the round, left for later
    pages_dirtied: int         # newly dirty pages found at the sync that ends the round
    remaining_pages: int       # pages still to send after that sync
    dirty_rate_pages_s: float  # pages_dirtied / duration
    bandwidth_mbps: float      # bytes_sent * 8 / duration
    threshold_bytes: float     # QEMU's bandwidth x downtime-limit at the sync (0 for Xen)
    throttle_pct: int          # auto-converge CPU throttle during the round
    faults: int = 0            # post-copy demand faults


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationReport:
    status: str                    # completed / failed / cancelled
    policy: str
    live: bool
    memory_pages: int
    page_size: int = 4096
    rounds: tuple[RoundRecord, ...] = ()
    total_time_ms: float = 0.0
    downtime_ms: float = 0.0
    setup_time_ms: float = 0.0
    expected_downtime_ms: float = 0.0
    # RAM only, as QEMU's query-migrate counts them (ram.c ram_transferred_add: page records, not the device state)
    transferred_bytes: int = 0
    precopy_bytes: int = 0
    downtime_bytes: int = 0
    postcopy_bytes: int = 0
    device_state_bytes: int = 0    # the rest of the stream: vCPU and device state at the stop (in `mbps`, not above)
    remaining_bytes: int = 0
    normal_pages: int = 0
    duplicate_pages: int = 0
    pages_sent: int = 0            # normal + duplicate
    dirty_sync_count: int = 0
    dirty_pages_rate: int = 0      # pages/s, as QEMU last measured it
    mbps: float = 0.0
    pages_per_second: int = 0
    cpu_throttle_pct: int = 0      # highest auto-converge throttle reached
    converged: bool = True
    stop_reason: str = ""
    postcopy_faults: int = 0
    guest_lost: bool = False
    verified: bool = False         # every page compared equal to the source at pause
    error: str = ""
    where: str = ""                # "source" / "target" / "lost": where the guest runs afterwards
    link_mbps: float = 0.0
    notes: tuple[str, ...] = field(default=())
    # (low, high) ms when a few pages decided the switchover: this downtime and the other outcome's (notes say which)
    downtime_range_ms: tuple[float, float] | None = None
    assumptions: tuple[str, ...] = field(default=())   # what predict_migration assumed, each with its source

    # --- QEMU views -----------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self.memory_pages * self.page_size

    @property
    def normal_bytes(self) -> int:
        return self.normal_pages * self.page_size

    @property
    def precopy_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.phase == "precopy")

    def query_migrate(self) -> dict:
        """QMP `query-migrate` reply (the `return` object), as QEMU's fill_source_migration_info builds it.

        A failed or cancelled migration reports only its status (and error-desc);
        `remaining` and `dirty-pages-rate` are filled only while not completed.
        """
        info: dict = {"status": self.status}
        if self.error and self.status == "failed":
            info["error-desc"] = self.error
        if self.status in ("failed", "cancelled"):
            return info
        info["total-time"] = int(round(self.total_time_ms))
        info["setup-time"] = int(round(self.setup_time_ms))
        if self.status == "completed":
            info["downtime"] = int(round(self.downtime_ms))
        else:
            info["expected-downtime"] = int(round(self.expected_downtime_ms))
        info["ram"] = {
            "transferred": self.transferred_bytes, "total": self.total_bytes,
            "duplicate": self.duplicate_pages, "skipped": 0, "normal": self.normal_pages,
            "normal-bytes": self.normal_bytes,
            "mbps": round(self.mbps, 6), "dirty-sync-count": self.dirty_sync_count, "page-size": self.page_size,
            "pages-per-second": self.pages_per_second, "precopy-bytes": self.precopy_bytes,
            "downtime-bytes": self.downtime_bytes, "postcopy-bytes": self.postcopy_bytes,
            "postcopy-requests": self.postcopy_faults,
        }
        if self.status != "completed":
            info["ram"]["remaining"] = self.remaining_bytes
            info["ram"]["dirty-pages-rate"] = self.dirty_pages_rate
        if self.cpu_throttle_pct:
            info["cpu-throttle-percentage"] = self.cpu_throttle_pct
        return info

    def info_migrate(self) -> str:
        """HMP `info migrate` text (hmp_info_migrate: RAM lines only when QMP reported RAM)."""
        q = self.query_migrate()
        status = f"Migration status: {q['status']}"
        if q["status"] == "failed" and self.error:
            status += f" (error: {self.error})"
        if "ram" not in q:
            return status
        ram = q["ram"]
        lines = [status, f"total time: {q['total-time']} ms"]
        if "expected-downtime" in q:
            lines.append(f"expected downtime: {q['expected-downtime']} ms")
        if "downtime" in q:
            lines.append(f"downtime: {q['downtime']} ms")
        lines += [
            f"setup: {q['setup-time']} ms",
            f"transferred ram: {ram['transferred'] >> 10} kbytes",
            f"throughput: {ram['mbps']:.2f} mbps",
            f"remaining ram: {ram.get('remaining', 0) >> 10} kbytes",
            f"total ram: {ram['total'] >> 10} kbytes",
            f"duplicate: {ram['duplicate']} pages",
            f"skipped: 0 pages",
            f"normal: {ram['normal']} pages",
            f"normal bytes: {ram['normal-bytes'] >> 10} kbytes",
            f"dirty sync count: {ram['dirty-sync-count']}",
            f"page size: {ram['page-size'] >> 10} kbytes",
            f"multifd bytes: 0 kbytes",
            f"pages-per-second: {ram['pages-per-second']}",
        ]
        if ram.get("dirty-pages-rate"):
            lines.append(f"dirty pages rate: {ram['dirty-pages-rate']} pages")
        if ram["postcopy-requests"]:
            lines.append(f"postcopy request count: {ram['postcopy-requests']}")
        for key, label in (("precopy-bytes", "precopy"), ("downtime-bytes", "downtime"), ("postcopy-bytes", "postcopy")):
            if ram[key]:
                lines.append(f"{label} ram: {ram[key] >> 10} kbytes")
        if "cpu-throttle-percentage" in q:
            lines.append(f"cpu throttle percentage: {q['cpu-throttle-percentage']}")
        return "\n".join(lines)

    def to_columns(self) -> dict[str, list]:
        """One list per RoundRecord field, plus cumulative time and bytes (bokeh-ready)."""
        cols: dict[str, list] = {f.name: [getattr(r, f.name) for r in self.rounds] for f in fields(RoundRecord)}
        t, b = 0.0, 0
        cols["end_ms"], cols["cum_bytes"] = [], []
        for r in self.rounds:
            t = r.start_ms + r.duration_ms
            b += r.bytes_sent
            cols["end_ms"].append(t)
            cols["cum_bytes"].append(b)
        cols["label"] = [f"{r.phase[0].upper()}{r.round}" for r in self.rounds]
        return cols

    def rounds_text(self) -> str:
        """A fixed-width table of the rounds (what `xm migrate` would log with debugging on)."""
        head = f"{'round':>5s} {'phase':13s} {'start ms':>9s} {'ms':>8s} {'sent':>8s} {'skipped':>7s} " \
               f"{'dirtied':>8s} {'left':>8s} {'Mbit/s':>7s} {'thr%':>4s}"
        rows = [head]
        for r in self.rounds:
            rows.append(f"{r.round:5d} {r.phase:13s} {r.start_ms:9.1f} {r.duration_ms:8.1f} {r.pages_sent:8d} "
                        f"{r.pages_skipped:7d} {r.pages_dirtied:8d} {r.remaining_pages:8d} {r.bandwidth_mbps:7.1f} "
                        f"{r.throttle_pct:4d}")
        return "\n".join(rows)

    def summary(self) -> str:
        """One line: policy, status, rounds, total time, downtime, data sent; then what was assumed and
        the engine's notes (a cap, a knife-edge switchover, ...), one per line."""
        rng = "" if self.downtime_range_ms is None else \
            f" (could be {self.downtime_range_ms[0]:.1f}-{self.downtime_range_ms[1]:.1f} ms: see the notes)"
        sent = self.transferred_bytes + self.device_state_bytes   # on the wire: RAM and the device state
        return (f"{self.policy}: {self.status} in {self.total_time_ms / 1000:.2f} s, "
                f"downtime {self.downtime_ms:.1f} ms{rng}, "
                f"{len(self.rounds)} rounds, {sent / 2**20:.1f} MiB sent "
                f"({sent / max(1, self.total_bytes):.2f} x RAM)"
                + (f", throttle {self.cpu_throttle_pct}%" if self.cpu_throttle_pct else "")
                + (", GUEST LOST" if self.guest_lost else "")
                + "".join(f"\n{a}" for a in self.assumptions)
                + "".join(f"\n{n}" for n in self.notes if n not in self.assumptions))
