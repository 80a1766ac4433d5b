#!/usr/bin/env python3
"""Real-QEMU live-migration ground truth for vmlab (issue 13, part 3).

    sh tools/qemu_groundtruth/setup.sh        # once: QEMU, busybox-static, gcc, a guest kernel
    python tools/qemu_groundtruth/run.py --grid default --out datasets/measurements/qemu_migration
    python tools/qemu_groundtruth/trace_target.py idle05 fresh08 ...   # the target's side, with trace events

For every run of the grid: boot a source QEMU whose initramfs guest runs the memory dirtier, start
a target QEMU with ``-incoming tcp:127.0.0.1:PORT -S``, set max-bandwidth / downtime-limit /
auto-converge through QMP, ``migrate``, poll ``query-migrate`` every 100 ms, cancel if it has not
completed by the run's timeout, then ``pmemsave`` both (source stopped in postmigrate, target paused
by -S) and compare page by page, and finally ``cont`` the target and wait for its dirtier to report.

Each finished run is saved in ``--work`` (default tools/qemu_groundtruth/.cache/runs/) and skipped on
a rerun, so an interrupted grid resumes. At the end (or with ``--assemble``) the runs are written
to ``--out``: runs.csv, traces.json.gz, provenance.json. Then rehash the registry with
``python tools/capture_trace.py --registry``. QEMU runs under ``nice -n N`` (``--nice``, default 0;
the committed dataset used ``--nice -10`` as root on an otherwise idle host, so that other work on
the machine does not slow the migration thread: see loadavg_1m_before).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import assemble  # noqa: E402
import guest  # noqa: E402
from grid import GRIDS  # noqa: E402
from migrate import run_one  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="default", choices=sorted(GRIDS))
    ap.add_argument("--out", default="datasets/measurements/qemu_migration")
    ap.add_argument("--work", default=str(guest.CACHE / "runs"))
    ap.add_argument("--only", nargs="*", help="run ids to (re)run")
    ap.add_argument("--rerun", action="store_true", help="redo runs already saved in --work")
    ap.add_argument("--assemble", action="store_true", help="only write --out from the saved runs")
    ap.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    ap.add_argument("--nice", type=int, default=0, help="QEMU's nice level (negative: higher priority, needs root)")
    args = ap.parse_args(argv)
    import migrate
    migrate.NICE = args.nice

    specs = GRIDS[args.grid]()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    accel, why = guest.detect_accelerator()
    if args.accel != "auto":
        accel, why = args.accel, f"forced by --accel {args.accel} ({why})"
    kernel = guest.find_kernel()
    initrd, initrd_sha = guest.build_initramfs()
    commit = subprocess.run(["git", "-C", str(guest.HERE), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(guest.HERE), "status", "--porcelain", "."], capture_output=True,
                           text=True, check=False).stdout.strip()
    commit = commit + ("+uncommitted" if dirty else "")
    print(f"accelerator: {accel} ({why})", flush=True)
    print(f"kernel: {kernel}; initramfs sha256 {initrd_sha[:12]}; {len(specs)} runs in grid {args.grid}", flush=True)
    if not args.assemble:
        for i, spec in enumerate(specs, 1):
            path = work / f"{spec.run_id}.json"
            if args.only and spec.run_id not in args.only:
                continue
            if path.exists() and not args.rerun and not args.only:
                continue
            load = os.getloadavg()[0]
            rec = run_one(spec, accel, kernel, initrd)
            rec["loadavg_1m_before"] = round(load, 2)
            rec["accel_detection"] = why
            rec["harness_commit"] = commit
            rec["nice"] = args.nice
            path.write_text(json.dumps(rec))
            last = rec["trace"][-1] if rec["trace"] else {}
            print(f"[{i}/{len(specs)}] {spec.run_id}: {rec['outcome']} total={last.get('total-time')} ms "
                  f"downtime={last.get('downtime')} ms verify={rec.get('verification')} "
                  f"wall={rec['wall_s']} s {rec.get('error', '')}", flush=True)
    recs = [json.loads((work / f"{s.run_id}.json").read_text()) for s in specs if (work / f"{s.run_id}.json").exists()]
    out = Path(args.out)
    assemble.write_dataset(recs, out, grid=args.grid, accel=accel, accel_why=why, kernel=kernel,
                           initrd_sha=initrd_sha, command=" ".join(["python", "tools/qemu_groundtruth/run.py",
                                                                    "--grid", args.grid, "--out", args.out]))
    print(f"wrote {len(recs)} runs to {out}; now run: python tools/capture_trace.py --registry", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
