"""Run every benchmark: `make bench` (or `python benchmarks/run.py [name-substring]`).

Each benchmarks/bench_*.py module defines functions named bench_*(); each returns
None or a short string describing the work done. A function is run `REPEAT` times
and the best wall time is reported with the target from its docstring's first line.
Benchmarks are measurements, never pass/fail tests.
"""

from __future__ import annotations

import importlib.util
import pathlib
import platform
import sys
import time

REPEAT = 3
HERE = pathlib.Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    pattern = argv[0] if argv else ""
    print(f"# vmlab benchmarks on {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{'benchmark':52s} {'best s':>9s}  target / note")
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in sorted(n for n in dir(mod) if n.startswith("bench_")):
            full = f"{path.stem}.{name}"
            if pattern not in full:
                continue
            fn = getattr(mod, name)
            best, note = float("inf"), ""
            for _ in range(REPEAT):
                t0 = time.perf_counter()
                note = fn() or ""
                best = min(best, time.perf_counter() - t0)
            target = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            print(f"{full:52s} {best:9.4f}  {target} {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
