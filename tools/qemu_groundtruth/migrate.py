"""One ground-truth run: boot a source QEMU running the dirtier, start a paused target with
``-incoming``, migrate over a local TCP socket through QMP, poll ``query-migrate`` every 100 ms,
then verify the target's memory against the paused source (``pmemsave`` of both, sha256).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from qmp import QMP, QMPError

POLL_S = 0.1           # query-migrate period
WARMUP_REPORTS = 3     # dirtier reports (1 s each) seen before migrating
BOOT_TIMEOUT_S = 180.0
CANCEL_WAIT_S = 15.0
TRACE_FIELDS = ("total-time", "setup-time", "expected-downtime", "downtime", "cpu-throttle-percentage")
RAM_FIELDS = ("transferred", "remaining", "total", "duplicate", "skipped", "normal", "normal-bytes",
              "dirty-sync-count", "dirty-pages-rate", "mbps", "pages-per-second", "precopy-bytes",
              "downtime-bytes")
DIRTY_RE = re.compile(r"DIRTY t=([\d.]+) writes=(\d+) distinct=(\d+) rate=(\d+)")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    run_id: str
    ram_mib: int
    wset_mib: int
    rate_pages_s: int          # requested page writes per second (0 = idle guest)
    pattern: str               # "rand" | "seq"
    max_bandwidth_mib_s: float
    downtime_limit_ms: int
    auto_converge: bool
    timeout_s: float           # migrate_cancel after this long without completing
    seed: int = 1
    tlb_flush: bool = True     # dirtier flushes the guest TLB every slice (see dirtier.c)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NICE = 0   # run.py --nice: QEMU's scheduling priority (negative needs root; the quiet grid used -10)


def qemu_argv(spec: RunSpec, accel: str, kernel: Path, initrd: Path, rundir: Path, role: str,
              port: int) -> list[str]:
    argv = ["nice", "-n", str(NICE), "qemu-system-x86_64", "-name", f"gt-{role}",
            "-machine", "pc", "-accel", accel, "-cpu", "qemu64" if accel == "tcg" else "host",
            "-smp", "1", "-m", str(spec.ram_mib),
            "-nodefaults", "-no-user-config", "-vga", "none", "-display", "none", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"console=ttyS0 quiet panic=-1 "
                       f"dirtier={spec.wset_mib},{spec.rate_pages_s},{spec.pattern},{spec.seed},10,"
                       f"{int(spec.tlb_flush)}",
            "-serial", f"file:{rundir}/{role}.serial",
            "-qmp", f"unix:{rundir}/{role}.qmp,server=on,wait=off"]
    if role == "dst":
        argv += ["-incoming", f"tcp:127.0.0.1:{port}", "-S"]
    return argv


class Serial:
    """Tails a guest's serial file; each DIRTY report gets the host time it was first seen."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.buf = path, 0, ""
        self.reports: list[tuple[float, float, int, int, float]] = []  # host_t, guest_t, writes, distinct, rate
        self.text = ""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read().decode("utf-8", "replace")
                self.pos = f.tell()
        except FileNotFoundError:
            return
        now = time.monotonic()
        self.text += chunk
        self.buf += chunk
        *lines, self.buf = self.buf.split("\n")
        for ln in lines:
            m = DIRTY_RE.search(ln)
            if m:
                self.reports.append((now, float(m[1]), int(m[2]), int(m[3]), float(m[4])))


def _wait_for(pred, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _flatten(info: dict[str, Any], t: float) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(t, 4), "status": info.get("status")}
    for k in TRACE_FIELDS:
        row[k] = info.get(k)
    ram = info.get("ram") or {}
    for k in RAM_FIELDS:
        row["ram." + k] = ram.get(k)
    return row


def _compare(a: Path, b: Path, chunk: int = 1 << 20) -> tuple[str, list[int], int]:
    """(sha256 of a, indices of the 4 KiB pages that differ, |size difference| in bytes)."""
    h, bad, page = hashlib.sha256(), [], 4096
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if not x and not y:
                break
            h.update(x)
            if x != y:
                bad += [(off + i) // page for i in range(0, max(len(x), len(y)), page)
                        if x[i:i + page] != y[i:i + page]]
            off += chunk
    return h.hexdigest(), bad, abs(a.stat().st_size - b.stat().st_size)


def _verify(src: QMP, dst: QMP, spec: RunSpec, rundir: Path) -> dict[str, Any]:
    """pmemsave guest-physical [0, RAM) of the paused source and the paused target; compare pages."""
    _wait_for(lambda: dst.cmd("query-status")["status"] != "inmigrate", 60, "target to finish incoming")
    t = time.monotonic()
    files = {}
    for name, q in (("src", src), ("dst", dst)):
        files[name] = rundir / f"{name}.mem"
        q.cmd("pmemsave", val=0, size=spec.ram_mib << 20, filename=str(files[name]))
    digest, bad, size_diff = _compare(files["src"], files["dst"])
    if not os.environ.get("GT_KEEP_DUMPS"):
        for f in files.values():
            f.unlink()
    return {"verification": "match" if not bad and not size_diff else "mismatch",
            "mismatched_pages": len(bad), "mismatched_page_index": bad[:64], "source_memory_sha256": digest,
            "verify_s": round(time.monotonic() - t, 2),
            "dst_status_after": dst.cmd("query-status")["status"],
            "src_status_after": src.cmd("query-status")["status"]}


def _resume_target(dst: QMP, serial: Serial) -> bool:
    """cont the target; True if the migrated dirtier prints a report within 15 s."""
    dst.cmd("cont")
    try:
        _wait_for(lambda: (serial.poll(), bool(serial.reports))[1], 15, "target dirtier report")
        return True
    except TimeoutError:
        return False


def _migrate(src: QMP, spec: RunSpec, port: int, serial: Serial) -> tuple[list[dict], float, str]:
    """Start the migration and poll until it ends or is cancelled; (trace, t0, outcome)."""
    src.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "auto-converge", "state": spec.auto_converge}])
    src.cmd("migrate-set-parameters", **{"max-bandwidth": int(spec.max_bandwidth_mib_s * (1 << 20)),
                                         "downtime-limit": spec.downtime_limit_ms})
    src.cmd("query-migrate-parameters")
    trace: list[dict] = []
    t0 = time.monotonic()
    src.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    k, cancelled_at = 0, None
    while True:
        k += 1
        time.sleep(max(0.0, t0 + k * POLL_S - time.monotonic()))
        now = time.monotonic()
        info = src.cmd("query-migrate")
        trace.append(_flatten(info, now - t0))
        serial.poll()
        status = info.get("status")
        if status in ("completed", "failed", "cancelled"):
            break
        if cancelled_at is None and now - t0 > spec.timeout_s:
            src.cmd("migrate_cancel")
            cancelled_at = now
        if cancelled_at is not None and now - cancelled_at > CANCEL_WAIT_S:
            break
    outcome = {"completed": "completed", "failed": "failed"}.get(status, "cancelled_timeout")
    if cancelled_at is None and status == "cancelled":
        outcome = "failed"
    return trace, t0, outcome


def run_one(spec: RunSpec, accel: str, kernel: Path, initrd: Path) -> dict[str, Any]:
    """Do one run; returns a JSON-able record (spec, summary facts, trace, dirtier reports, QMP log)."""
    started, started_mono = time.time(), time.monotonic()
    rundir = Path(tempfile.mkdtemp(prefix=f"gt-{spec.run_id}-"))
    port = _free_port()
    procs, qmps = {}, {}
    rec: dict[str, Any] = {"spec": dataclasses.asdict(spec), "accel": accel,
                           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    argvs = {role: qemu_argv(spec, accel, kernel, initrd, rundir, role, port) for role in ("src", "dst")}
    rec["argv"] = {r: [a.replace(str(rundir), "$RUNDIR").replace(str(kernel.parent), "$KERNEL_DIR")
                       .replace(str(initrd.parent), "$CACHE") for a in v] for r, v in argvs.items()}
    try:
        for role in ("src", "dst"):
            procs[role] = subprocess.Popen(argvs[role], stdin=subprocess.DEVNULL,
                                           stdout=open(rundir / f"{role}.out", "wb"), stderr=subprocess.STDOUT)
            qmps[role] = QMP(str(rundir / f"{role}.qmp"))
        ser = Serial(rundir / "src.serial")
        t_boot = time.monotonic()
        def warm() -> bool:
            ser.poll()
            if "Kernel panic" in ser.text:
                raise TimeoutError("guest kernel panicked before the dirtier ran: "
                                   + ser.text[ser.text.index("Kernel panic"):].splitlines()[0][:120])
            return len(ser.reports) >= WARMUP_REPORTS
        _wait_for(warm, BOOT_TIMEOUT_S, "guest dirtier")
        rec["boot_to_warm_s"] = round(time.monotonic() - t_boot, 2)
        trace, t0, outcome = _migrate(qmps["src"], spec, port, ser)
        rec.update(outcome=outcome, trace=trace)
        if outcome == "completed":
            rec.update(_verify(qmps["src"], qmps["dst"], spec, rundir))
            rec["target_resumed"] = _resume_target(qmps["dst"], Serial(rundir / "dst.serial"))
        else:
            rec.update(verification="not_run", target_resumed=None)
        ser.poll()
        rec["dirtier"] = [(round(h - t0, 3), g, w, d, r) for h, g, w, d, r in ser.reports]
    except (QMPError, TimeoutError, OSError) as exc:
        rec.update(outcome="failed", error=f"{type(exc).__name__}: {exc}", verification="not_run")
        rec.setdefault("trace", [])
    finally:
        for role, q in qmps.items():
            rec.setdefault("qmp", {})[role] = [(round(t - started_mono, 3), d, m.replace(str(rundir), "$RUNDIR"))
                                               for t, d, m in q.log]
            try:
                q.cmd("quit")
            except (QMPError, OSError):
                pass
            q.close()
        for role, p in procs.items():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        rec["qemu_output"] = {r: (rundir / f"{r}.out").read_text(errors="replace")[-2000:]
                              for r in procs if (rundir / f"{r}.out").exists()}
        rec["src_serial_head"] = (rundir / "src.serial").read_text(errors="replace")[:600] \
            if (rundir / "src.serial").exists() else ""
        if not os.environ.get("GT_KEEP_DUMPS"):
            for f in rundir.iterdir():
                f.unlink()
            rundir.rmdir()
    rec["wall_s"] = round(time.time() - started, 2)
    return rec
