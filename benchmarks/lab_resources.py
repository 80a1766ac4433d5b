"""Per-lab wall time and kernel peak memory, for docs/instructors.md: `python benchmarks/lab_resources.py [NN ...]`.

Each lab notebook (a copy in a scratch folder: nothing is written into the repository) runs top to
bottom in a fresh kernel with nbclient, as a student's "Run All" would. Reported per lab:

  * cells_s   - wall time of executing every cell (kernel start excluded);
  * peak_mib  - the kernel process's peak resident set (VmHWM from /proc/PID/status, read just
                before the kernel shuts down: the high-water mark, not a sample);
  * start_mib - the kernel's resident set right after it started (what an idle kernel costs).

Linux only (/proc). Numbers depend on the machine and its load: state both with them.
"""

from __future__ import annotations

import pathlib
import platform
import shutil
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _status_kib(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def measure(notebook: pathlib.Path, workdir: pathlib.Path) -> dict:
    copy = workdir / notebook.name
    shutil.copy(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        start = _status_kib(pid, "VmRSS")
        t0 = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        cells_s = time.perf_counter() - t0
        peak = _status_kib(pid, "VmHWM")
    return {"lab": notebook.name, "cells_s": cells_s, "peak_mib": peak / 1024, "start_mib": start / 1024}


def main(argv: list[str]) -> int:
    labs = sorted((ROOT / "labs").glob("*.ipynb"))
    if argv:
        labs = [p for p in labs if p.name[:2] in argv]
    print(f"# python {platform.python_version()}, {platform.machine()}, {len(labs)} lab(s)")
    print(f"{'lab':45s} {'cells_s':>8s} {'peak_mib':>9s} {'start_mib':>9s}")
    with tempfile.TemporaryDirectory(prefix="vmlab-measure-") as tmp:
        for nb in labs:
            r = measure(nb, pathlib.Path(tmp))
            print(f"{r['lab']:45s} {r['cells_s']:8.1f} {r['peak_mib']:9.0f} {r['start_mib']:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
