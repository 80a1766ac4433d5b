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

The files ship inside vmlab (``vmlab._data``, read with ``importlib.resources``; the repository's
``datasets/`` in an editable install); ``$VMLAB_DATASETS`` points at another copy. Modules:
``registry`` (where, and the sha256 check), ``tables`` (CSV tables, cost presets), ``traces``.
"""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable

from vmlab.datasets.registry import (CONFIDENCE_LEVELS, DATASETS_DIR, REGISTRY_NAME, DatasetInfo, _checked, _root,
                                     verify_registry)
from vmlab.datasets.tables import (TABLE_SCHEMAS, CostEntry, cost_preset, cost_preset_entries,
                                   list_cost_presets, load_table)
from vmlab.datasets.traces import (TRACE_ARRAYS, DirtyingWorkload, MemoryTrace, _trace_names, load_trace,
                                   trace_access_stream, trace_dirtying_workload, trace_page_index)


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



def _first_comment(path: Traversable) -> str:
    for ln in path.read_text(encoding="utf-8").splitlines():
        if ln.startswith("#"):
            return ln.lstrip("# ").strip()
    return ""


def list_datasets(*, root: Traversable | str | None = None) -> list[DatasetInfo]:
    """Every table and trace, with a one-line description (no hash check; loading checks)."""
    r = _root(root)
    out = [DatasetInfo(name=n, kind="table", path=f"tables/{n}.csv", description=_first_comment(r / f"tables/{n}.csv"))
           for n in TABLE_SCHEMAS if (r / f"tables/{n}.csv").is_file()]
    for n in _trace_names(r):
        meta_path = r / f"traces/{n}.json"
        desc = json.loads(meta_path.read_text()).get("description", "") if meta_path.is_file() else ""
        out.append(DatasetInfo(name=n, kind="trace", path=f"traces/{n}.npz", description=desc))
    return out
