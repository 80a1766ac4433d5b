"""Run grids for the ground-truth harness. Each grid is a list of RunSpec; run ids are stable.

``default`` is built as sweeps around one base point (RAM 256 MiB, working set 64 MiB, random
writes, 32 MiB/s, downtime-limit 300 ms, auto-converge off), each sweep varying one or two factors,
plus idle guests, auto-converge on the cases that do not converge without it, repeats of the base
point, and two runs without the dirtier's per-slice TLB flush (to show QEMU 7.2's TCG lost-dirty-bit
bug), then runs off the axes: idle repeats, limits above the sender's ceiling, and 14 seeded random
combinations of the factor levels (``mix*``). A run is cancelled after ``timeout_for`` seconds:
max(30 s, 1.5 x RAM / bandwidth) -- 1.5 full passes of all RAM at the limit -- and max(60 s, ...)
with auto-converge, which needs several syncs to throttle.
"""

from __future__ import annotations

import random

from migrate import RunSpec


def timeout_for(ram_mib: int, bw_mib_s: float, auto_converge: bool) -> float:
    return float(max(60 if auto_converge else 30, round(1.5 * ram_mib / bw_mib_s)))


def _spec(n: int, sweep: str, *, ram: int = 256, wset: int = 64, rate: int = 4000, pattern: str = "rand",
          bw: float = 32, dl: int = 300, ac: bool = False, flush: bool = True, seed: int | None = None) -> RunSpec:
    return RunSpec(run_id=f"{sweep}{n:02d}", ram_mib=ram, wset_mib=wset, rate_pages_s=rate, pattern=pattern,
                   max_bandwidth_mib_s=bw, downtime_limit_ms=dl, auto_converge=ac,
                   timeout_s=timeout_for(ram, bw, ac), seed=seed if seed is not None else 1000 + n,
                   tlb_flush=flush)


def default_grid() -> list[RunSpec]:
    g: list[RunSpec] = []
    # idle guests (dirtier allocates its working set, then only sleeps): zero pages, setup, downtime floor,
    # the sender's ceiling at 256 MiB/s
    g += [_spec(i, "idle", ram=ram, wset=16, rate=0, bw=bw)
          for i, (ram, bw) in enumerate((r, b) for r in (128, 256, 512) for b in (8, 32, 256))]
    # dirty rate, random writes over 64 MiB (32 MiB/s = 8192 pages/s: rates above it outrun the link)
    g += [_spec(i, "rate", rate=r) for i, r in enumerate((1000, 4000, 8000, 16000, 32000, 200000))]
    # sequential writes at the same rates
    g += [_spec(i, "seq", rate=r, pattern="seq") for i, r in enumerate((1000, 4000, 16000))]
    # guest RAM size with the same dirtier (128 MiB holds a 32 MiB working set, not 64: the kernel
    # and initramfs take ~60 MiB, and 64 MiB panicked with "System is deadlocked on memory")
    g += [_spec(0, "ram", ram=128, wset=32), _spec(1, "ram", ram=512)]
    # working set, random writes at 8000 pages/s
    g += [_spec(i, "wset", wset=w, rate=8000) for i, w in enumerate((8, 16, 32, 160))]
    # bandwidth limit, 8000 pages/s (31 MiB/s of writes)
    g += [_spec(i, "bw", rate=8000, bw=b) for i, b in enumerate((8, 16, 64, 128, 256))]
    # downtime limit at 4000 pages/s
    g += [_spec(i, "dl", dl=d) for i, d in enumerate((30, 100, 1000))]
    # downtime limit where the dirty rate is near the link (8000 pages/s at 32 MiB/s)
    g += [_spec(i, "dlhot", rate=8000, dl=d) for i, d in enumerate((30, 1000))]
    # auto-converge on runs that do not converge without it (and one that does)
    g += [_spec(i, "ac", ac=True, **kw) for i, kw in enumerate((
        dict(rate=16000), dict(rate=32000), dict(rate=8000, bw=8), dict(rate=16000, pattern="seq"),
        dict(rate=200000, bw=64), dict(rate=4000), dict(rate=32000, dl=30), dict(rate=16000, ram=512, wset=128)))]
    # bigger guests, more bandwidth, bigger working set
    g += [_spec(i, "big", ram=512, wset=w, rate=r, bw=b) for i, (w, r, b) in enumerate((
        (128, 16000, 256), (256, 8000, 128), (128, 32000, 64)))]
    # repeats of the base point (different dirtier seeds): run-to-run spread
    g += [_spec(i, "rep", seed=2000 + i) for i in range(3)]
    # no per-slice TLB flush: QEMU 7.2 TCG loses dirty bits (compare with rate01 / seq02)
    g += [_spec(0, "noflush", rate=4000, flush=False), _spec(1, "noflush", rate=16000, pattern="seq", flush=False)]
    # spread of the switchover: the same idle point twice more (idle05 had 109 ms downtime, idle08 1 ms)
    g += [_spec(i, "reidle", ram=256, wset=16, rate=0, bw=256, seed=3000 + i) for i in range(2)]
    # the sender's ceiling: limits above what one migration thread can send here
    g += [_spec(0, "ceil", ram=512, wset=16, rate=0, bw=1024), _spec(1, "ceil", ram=512, wset=128, rate=4000, bw=1024)]
    g += mixed_runs(14)
    return g


def mixed_runs(n: int, seed: int = 13, prefix: str = "mix", seed_base: int = 4000) -> list[RunSpec]:
    """n combinations drawn (seeded) from the factor levels: runs off the sweep axes, e.g. to hold out."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ram = rng.choice((128, 256, 512))
        wset = rng.choice([w for w in (8, 16, 32, 64, 128) if w <= ram - 96])
        out.append(_spec(i, prefix, ram=ram, wset=wset, rate=rng.choice((0, 1000, 2000, 4000, 8000, 16000, 32000)),
                         pattern=rng.choice(("rand", "seq")), bw=rng.choice((8, 16, 32, 64, 128, 256)),
                         dl=rng.choice((30, 100, 300, 1000)), ac=rng.random() < 0.3, seed=seed_base + i))
    return out


def fresh_grid() -> list[RunSpec]:
    """Runs measured after the model was calibrated, for validation only (never fitted): new seeded
    combinations of the same factor levels (datasets/measurements/qemu_migration_fresh). fresh00-15
    were measured first; fresh16-31 (the same draw continued) after the downtime range was added."""
    return mixed_runs(32, seed=29, prefix="fresh", seed_base=5000)


def smoke_grid() -> list[RunSpec]:
    return [_spec(0, "smoke", ram=128, wset=16, rate=2000), _spec(1, "smoke", ram=128, wset=16, rate=0)]


GRIDS = {"default": default_grid, "smoke": smoke_grid, "fresh": fresh_grid}
