"""Loaders for ``datasets/``: published tables, cost presets and real-program memory traces.

Every file is checked against ``datasets/registry.json`` (sha256) before it is
read, so a number a lab shows is the number the README describes. Tables are
small CSV files with ``#`` provenance comments; every row carries ``source`` and
``confidence`` (``verified`` | ``recalled`` | ``illustrative``).

Traces are page-level reductions of valgrind-lackey runs of real programs
(``tools/capture_trace.py``). Their time unit is **instructions executed by the
traced program** (x86-64 instructions as valgrind counts them). To speak in
seconds, pick a rate, e.g. 1e9 instructions/s (IPC 1 at 1 GHz), and say so.

Two trace views serve the models:

* ``trace_access_stream`` -> (page, is_write) arrays, for paging/TLB models;
* ``trace_dirtying_workload`` -> for window i, the pages stored to, for
  pre-copy / post-copy migration models.

Pages may be returned as raw virtual page numbers (``dense=False``) or as dense
indices 0..n_pages-1 (``dense=True``): index k is the k-th smallest virtual
page the trace touches, the same mapping in both views (``trace_page_index``).

Raises ``DatasetError`` (a ``ValueError``) for an unknown name, a missing file,
a file whose hash differs from the registry, or a malformed file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from vmlab.errors import DatasetError

__all__ = [
    "DATASETS_DIR",
    "CONFIDENCE_LEVELS",
    "DatasetInfo",
    "CostEntry",
    "MemoryTrace",
    "DirtyingWorkload",
    "list_datasets",
    "load_table",
    "list_cost_presets",
    "cost_preset",
    "cost_preset_entries",
    "load_trace",
    "trace_access_stream",
    "trace_page_index",
    "trace_dirtying_workload",
    "verify_registry",
]

# The repository's datasets/ (vmlab is installed editable); VMLAB_DATASETS points elsewhere.
DATASETS_DIR = Path(os.environ.get("VMLAB_DATASETS") or Path(__file__).resolve().parent.parent / "datasets")
REGISTRY_NAME = "registry.json"
CONFIDENCE_LEVELS = ("verified", "recalled", "illustrative")
_REGEN = "python tools/capture_trace.py --registry"

# Column -> (type, nullable). Types: int, float, str, bool ("true"/"false").
_S, _I, _F, _B = str, int, float, bool
TABLE_SCHEMAS: Mapping[str, Mapping[str, tuple[type, bool]]] = MappingProxyType({
    "exit_costs": {
        "cpu": (_S, False), "year": (_I, True), "hypervisor": (_S, False), "operation": (_S, False),
        "cycles_low": (_F, False), "cycles_high": (_F, False),
        "source": (_S, False), "confidence": (_S, False), "note": (_S, True),
    },
    "adams_agesen_2006": {
        "benchmark": (_S, False), "kind": (_S, False), "platform": (_S, False), "value": (_F, True),
        "unit": (_S, False), "finding": (_S, True), "source": (_S, False), "confidence": (_S, False),
    },
    "barham_2003": {
        "benchmark": (_S, False), "system": (_S, False), "value": (_F, False), "unit": (_S, False),
        "higher_is_better": (_B, False), "source": (_S, False), "confidence": (_S, False),
    },
    "clark_2005": {
        "benchmark": (_S, False), "metric": (_S, False), "value": (_F, False), "unit": (_S, False),
        "source": (_S, False), "confidence": (_S, False), "note": (_S, True),
    },
    "migration_constants": {
        "system": (_S, False), "constant": (_S, False), "value": (_F, False), "unit": (_S, False),
        "source_file": (_S, False), "source": (_S, False), "confidence": (_S, False), "note": (_S, True),
    },
    "page_walk_refs": {
        "mode": (_S, False), "guest_levels": (_I, False), "nested_levels": (_I, False),
        "memory_refs": (_I, False), "formula": (_S, False), "source": (_S, False), "confidence": (_S, False),
    },
    "cost_presets": {
        "preset": (_S, False), "operation": (_S, False), "cycles": (_F, False),
        "source": (_S, False), "confidence": (_S, False), "note": (_S, True),
    },
})

TRACE_ARRAYS = ("time_delta", "page_delta", "is_write", "dirty_offsets", "dirty_pages")


@dataclass(frozen=True, kw_only=True, slots=True)
class DatasetInfo:
    """One dataset: its name, kind ('table' or 'trace'), file and a one-line description."""

    name: str
    kind: str
    path: str
    description: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CostEntry:
    """One operation's cost in a preset, with where the number comes from."""

    operation: str
    cycles: float
    source: str
    confidence: str
    note: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryTrace:
    """A real program's page-level access trace (arrays are read-only).

    ``time[i]`` is the number of instructions the program had executed before
    record i; ``pages[i]`` its 4 KiB virtual page number; ``is_write[i]`` whether
    the run of accesses it stands for stored to the page. The stream may be a
    prefix of the run (``metadata['reduction']['stream_truncated']``); the
    per-window dirty sets always cover the whole run.
    """

    name: str
    time: np.ndarray
    pages: np.ndarray
    is_write: np.ndarray
    dirty_offsets: np.ndarray
    dirty_pages: np.ndarray
    metadata: Mapping[str, Any] = field(repr=False)

    @property
    def window_instructions(self) -> int:
        return int(self.metadata["reduction"]["window_instructions"])

    @property
    def n_windows(self) -> int:
        return len(self.dirty_offsets) - 1

    @property
    def instructions(self) -> int:
        return int(self.metadata["instructions"])

    def dirty_window(self, i: int) -> np.ndarray:
        """Virtual page numbers stored to in base window i (sorted)."""
        return self.dirty_pages[self.dirty_offsets[i]:self.dirty_offsets[i + 1]]


@dataclass(frozen=True, kw_only=True, slots=True)
class DirtyingWorkload:
    """What a migration model takes: for window i, the pages the program wrote.

    ``windows[i]`` holds sorted page ids (dense indices in [0, n_pages) when
    ``dense``; else virtual page numbers) written during instructions
    [i * window_instructions, (i + 1) * window_instructions). A page written
    many times in a window appears once, as in a log-dirty bitmap.
    """

    name: str
    window_instructions: int
    n_pages: int
    dense: bool
    windows: tuple[np.ndarray, ...]
    vpns: np.ndarray = field(repr=False)

    @property
    def dirty_counts(self) -> np.ndarray:
        """Distinct pages dirtied per window (int64 array, one per window)."""
        return np.array([len(w) for w in self.windows], dtype=np.int64)

    @property
    def window_start_instructions(self) -> np.ndarray:
        return np.arange(len(self.windows), dtype=np.int64) * self.window_instructions


# --------------------------------------------------------------------------- registry


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else DATASETS_DIR


def _registry(root: Path) -> dict[str, str]:
    path = root / REGISTRY_NAME
    if not path.is_file():
        raise DatasetError(f"{path} is missing; the dataset registry must exist; restore datasets/ from the repository")
    try:
        data = json.loads(path.read_text())
        return dict(data["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a valid registry ({exc}); restore it or run {_REGEN}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(root: Path, rel: str) -> Path:
    """The path of a registered dataset file whose content matches its registered hash."""
    reg = _registry(root)
    path = root / rel
    if rel not in reg:
        raise DatasetError(f"datasets/{rel} is not in datasets/{REGISTRY_NAME}; every dataset file must be "
                           f"registered; run {_REGEN} after adding it")
    if not path.is_file():
        raise DatasetError(f"datasets/{rel} is missing ({path}); every registered dataset file must exist; "
                           f"restore it from the repository or regenerate it (see datasets/README.md)")
    got = _sha256(path)
    if got != reg[rel]:
        raise DatasetError(f"datasets/{rel} has sha256 {got[:12]}… but the registry records {reg[rel][:12]}…; "
                           f"dataset files must match datasets/{REGISTRY_NAME}; restore the file, or if you "
                           f"changed it on purpose run {_REGEN}")
    return path


def verify_registry(root: Path | str | None = None) -> dict[str, str]:
    """Check every registered file; returns {relative path: sha256}. Raises DatasetError on the first bad one."""
    r = _root(root)
    reg = _registry(r)
    for rel in sorted(reg):
        _checked(r, rel)
    return reg


# --------------------------------------------------------------------------- tables


def _parse(value: str, typ: type, nullable: bool, where: str) -> Any:
    if value == "":
        if nullable:
            return None
        raise DatasetError(f"{where} is empty; this column needs a value; fix the CSV")
    try:
        if typ is bool:
            if value not in ("true", "false"):
                raise ValueError(value)
            return value == "true"
        return typ(value)
    except ValueError:
        raise DatasetError(f"{where}={value!r} is not a {typ.__name__}; fix the CSV") from None


def _read_csv(path: Path, rel: str, schema: Mapping[str, tuple[type, bool]]) -> list[dict[str, Any]]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader, None)
    if header != list(schema):
        raise DatasetError(f"datasets/{rel} has columns {header}; expected {list(schema)}; fix the header")
    rows = []
    for n, raw in enumerate(reader, start=1):
        if len(raw) != len(header):
            raise DatasetError(f"datasets/{rel} row {n} has {len(raw)} fields, expected {len(header)}; "
                               f"quote values that contain commas")
        row = {c: _parse(v, *schema[c], where=f"datasets/{rel} row {n} column {c}") for c, v in zip(header, raw)}
        if row.get("confidence") not in CONFIDENCE_LEVELS:
            raise DatasetError(f"datasets/{rel} row {n} confidence={row.get('confidence')!r}; "
                               f"must be one of {CONFIDENCE_LEVELS}")
        rows.append(row)
    return rows


def load_table(name: str, *, root: Path | str | None = None) -> list[dict[str, Any]]:
    """Rows of a published table as dicts with typed values (a fresh list each call).

    Names: exit_costs, adams_agesen_2006, barham_2003, clark_2005,
    migration_constants, page_walk_refs, cost_presets.
    """
    if name not in TABLE_SCHEMAS:
        raise DatasetError(f"no table named {name!r}; choose from {', '.join(TABLE_SCHEMAS)}")
    rel = f"tables/{name}.csv"
    return _read_csv(_checked(_root(root), rel), rel, TABLE_SCHEMAS[name])


def list_cost_presets(*, root: Path | str | None = None) -> list[str]:
    """Names of the cost presets in cost_presets.csv, in file order."""
    return list(dict.fromkeys(r["preset"] for r in load_table("cost_presets", root=root)))


def cost_preset_entries(name: str, *, root: Path | str | None = None) -> dict[str, CostEntry]:
    """Operation -> CostEntry (cycles, source, confidence, note) for one preset."""
    rows = [r for r in load_table("cost_presets", root=root) if r["preset"] == name]
    if not rows:
        raise DatasetError(f"no cost preset named {name!r}; choose from {', '.join(list_cost_presets(root=root))}")
    return {r["operation"]: CostEntry(operation=r["operation"], cycles=r["cycles"], source=r["source"],
                                      confidence=r["confidence"], note=r["note"]) for r in rows}


def cost_preset(name: str, *, root: Path | str | None = None) -> dict[str, float]:
    """Operation -> cycles for one preset (p4_vtx_2006, modern_kvm, xen_pv)."""
    return {op: e.cycles for op, e in cost_preset_entries(name, root=root).items()}


# --------------------------------------------------------------------------- traces

_TRACE_CACHE: dict[tuple[str, int, int], MemoryTrace] = {}


def _trace_names(root: Path) -> list[str]:
    return sorted(Path(rel).stem for rel in _registry(root) if rel.startswith("traces/") and rel.endswith(".npz"))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def load_trace(name: str, *, root: Path | str | None = None) -> MemoryTrace:
    """A real program's trace (see ``MemoryTrace``); names from ``list_datasets()``."""
    r = _root(root)
    names = _trace_names(r)
    if name not in names:
        raise DatasetError(f"no trace named {name!r}; choose from {', '.join(names)}")
    npz_path = _checked(r, f"traces/{name}.npz")
    meta_path = _checked(r, f"traces/{name}.json")
    st = npz_path.stat()
    key = (str(npz_path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _TRACE_CACHE:
        return _TRACE_CACHE[key]
    with np.load(npz_path, allow_pickle=False) as z:
        missing = [a for a in TRACE_ARRAYS if a not in z.files]
        if missing:
            raise DatasetError(f"datasets/traces/{name}.npz lacks arrays {missing}; regenerate it with "
                               f"python tools/capture_trace.py {name}")
        arrays = {a: z[a] for a in TRACE_ARRAYS}
    trace = MemoryTrace(
        name=name,
        time=_readonly(np.cumsum(arrays["time_delta"], dtype=np.uint64)),
        pages=_readonly(np.cumsum(arrays["page_delta"]).astype(np.uint64)),
        is_write=_readonly(arrays["is_write"].astype(bool)),
        dirty_offsets=_readonly(arrays["dirty_offsets"].astype(np.int64)),
        dirty_pages=_readonly(arrays["dirty_pages"].astype(np.uint64)),
        metadata=MappingProxyType(json.loads(meta_path.read_text())),
    )
    _TRACE_CACHE[key] = trace
    return trace


def trace_page_index(name: str, *, root: Path | str | None = None) -> np.ndarray:
    """Sorted distinct virtual pages of a trace: dense index k <-> virtual page ``result[k]``."""
    t = load_trace(name, root=root)
    return np.union1d(t.pages, t.dirty_pages)


def trace_access_stream(name: str, *, limit: int | None = None, dense: bool = False,
                        root: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pages, is_write) of a real program, in program order, for a paging or TLB model.

    One entry per run of consecutive data accesses to a page (instruction
    fetches are not included). ``limit`` keeps the first ``limit`` entries;
    ``dense`` maps virtual pages to 0..n_pages-1 (see ``trace_page_index``).
    """
    t = load_trace(name, root=root)
    if limit is not None and limit < 0:
        raise DatasetError(f"limit={limit} is negative; pass None or a count >= 0")
    pages, writes = t.pages[:limit], t.is_write[:limit]
    if dense:
        pages = np.searchsorted(trace_page_index(name, root=root), pages).astype(np.int64)
    return pages, writes


def trace_dirtying_workload(name: str, *, window_instructions: int | None = None, dense: bool = True,
                            root: Path | str | None = None) -> DirtyingWorkload:
    """Per-window dirtied pages of a real program, for a migration model.

    ``window_instructions`` must be a multiple of the captured window
    (``MemoryTrace.window_instructions``, 100,000 instructions); k captured
    windows are merged by union. Time unit: instructions of the traced program.
    """
    t = load_trace(name, root=root)
    base = t.window_instructions
    w = base if window_instructions is None else int(window_instructions)
    if w <= 0 or w % base:
        raise DatasetError(f"window_instructions={window_instructions} is not a positive multiple of the "
                           f"captured {base}-instruction window; pass a multiple of {base}")
    k = w // base
    index = trace_page_index(name, root=root)
    windows = []
    for start in range(0, t.n_windows, k):
        lo, hi = t.dirty_offsets[start], t.dirty_offsets[min(start + k, t.n_windows)]
        vp = np.unique(t.dirty_pages[lo:hi])
        out = np.searchsorted(index, vp).astype(np.int64) if dense else vp
        windows.append(_readonly(out))
    return DirtyingWorkload(name=name, window_instructions=w, n_pages=len(index), dense=dense,
                            windows=tuple(windows), vpns=_readonly(index))


# --------------------------------------------------------------------------- catalogue


def _first_comment(path: Path) -> str:
    for ln in path.read_text(encoding="utf-8").splitlines():
        if ln.startswith("#"):
            return ln.lstrip("# ").strip()
    return ""


def list_datasets(*, root: Path | str | None = None) -> list[DatasetInfo]:
    """Every table and trace, with a one-line description (no hash check; loading checks)."""
    r = _root(root)
    out = [DatasetInfo(name=n, kind="table", path=f"tables/{n}.csv", description=_first_comment(r / f"tables/{n}.csv"))
           for n in TABLE_SCHEMAS if (r / f"tables/{n}.csv").is_file()]
    for n in _trace_names(r):
        meta_path = r / f"traces/{n}.json"
        desc = json.loads(meta_path.read_text()).get("description", "") if meta_path.is_file() else ""
        out.append(DatasetInfo(name=n, kind="trace", path=f"traces/{n}.npz", description=desc))
    return out
