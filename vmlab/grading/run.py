"""Run one spliced lab in a fresh kernel: the student's seed in VMLAB_SEED, checks recorded to a file.

nbformat and nbclient are imported here, inside the function, so `import vmlab` never needs them
(they come with the `grade` extra).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from dataclasses import dataclass

from vmlab.exercises import GRADING_ENV, SEED_ENV
from vmlab.grading.answers import cell_source


@dataclass(frozen=True, kw_only=True, slots=True)
class RunOutcome:
    records: tuple[dict, ...]   # one per check, as Exercises wrote them (the last one per key wins)
    stopped: str = ""           # why the run stopped early ("" when every cell ran)


def _stop_reason(cells: list, exc: BaseException, timeout: float) -> str:
    ran = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("execution_count") is not None]
    idx = ran[-1] if ran else 0
    first = next((ln for ln in cell_source(cells[idx]).splitlines() if ln.strip() and not ln.startswith("#")), "")
    where = f"cell {idx} (`{first.strip()[:60]}`)"
    if type(exc).__name__ == "CellTimeoutError" or isinstance(exc, TimeoutError):
        return f"the lab stopped: {where} ran longer than the per-cell timeout of {timeout:g} s"
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return f"the lab stopped: {where} raised {ename}: {evalue[-1] if evalue else ''}"[:300]


def run_lab(nb_json: dict, *, seed: int, cwd: pathlib.Path, cell_timeout: float = 60,
            kernel_name: str = "python3") -> RunOutcome:
    """Execute the notebook top to bottom with VMLAB_SEED=seed; stop at the first error or timeout."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.from_dict(nb_json)
    fd, rec_path = tempfile.mkstemp(prefix="vmlab-grade-", suffix=".jsonl")
    os.close(fd)
    env = {**os.environ, SEED_ENV: str(seed), GRADING_ENV: rec_path, "MPLBACKEND": "Agg",
           "VMLAB_NO_BOKEHJS": "1"}
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name=kernel_name, allow_errors=False,
                            interrupt_on_timeout=False, record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    stopped = ""
    try:
        client.execute(env=env)
    except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError, ...
        stopped = _stop_reason(nb.cells, exc, cell_timeout)
    try:
        text = pathlib.Path(rec_path).read_text(encoding="utf-8")
    finally:
        pathlib.Path(rec_path).unlink(missing_ok=True)
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return RunOutcome(records=tuple(records), stopped=stopped)
