"""Real-program memory traces (`datasets/traces/*.npz` + `.json`) and the views the models take.

Traces are page-level reductions of valgrind-lackey runs of real programs
(``tools/capture_trace.py``). Their time unit is **instructions executed by the
traced program**; to speak in seconds, pick a rate (e.g. 1e9 instructions/s) and say so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np

from vmlab.datasets.registry import _checked, _registry, _root
from vmlab.errors import DatasetError

TRACE_ARRAYS = ("time_delta", "page_delta", "is_write", "dirty_offsets", "dirty_pages")


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



# Keyed by (file, registered sha256): a file is only read after its hash matched the registry.
_TRACE_CACHE: dict[tuple[str, str], MemoryTrace] = {}


def _trace_names(root: Traversable) -> list[str]:
    return sorted(PurePosixPath(rel).stem for rel in _registry(root) if rel.startswith("traces/") and rel.endswith(".npz"))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def load_trace(name: str, *, root: Traversable | str | None = None) -> MemoryTrace:
    """A real program's trace (see ``MemoryTrace``); names from ``list_datasets()``."""
    r = _root(root)
    names = _trace_names(r)
    if name not in names:
        raise DatasetError(f"no trace named {name!r}; choose from {', '.join(names)}")
    npz_path = _checked(r, f"traces/{name}.npz")
    meta_path = _checked(r, f"traces/{name}.json")
    key = (str(npz_path), _registry(r)[f"traces/{name}.npz"])
    if key in _TRACE_CACHE:
        return _TRACE_CACHE[key]
    with npz_path.open("rb") as f, np.load(f, allow_pickle=False) as z:
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


def trace_page_index(name: str, *, root: Traversable | str | None = None) -> np.ndarray:
    """Sorted distinct virtual pages of a trace: dense index k <-> virtual page ``result[k]``."""
    t = load_trace(name, root=root)
    return np.union1d(t.pages, t.dirty_pages)


def trace_access_stream(name: str, *, limit: int | None = None, dense: bool = False,
                        root: Traversable | str | None = None) -> tuple[np.ndarray, np.ndarray]:
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
                            root: Traversable | str | None = None) -> DirtyingWorkload:
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
