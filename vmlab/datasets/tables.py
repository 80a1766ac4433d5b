"""Published tables (`datasets/tables/*.csv`) and the cost presets, typed by a schema per table.

Tables are small CSV files with ``#`` provenance comments; every row carries ``source`` and
``confidence`` (``verified`` | ``recalled`` | ``illustrative``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

from vmlab.datasets.registry import CONFIDENCE_LEVELS, _checked, _root
from vmlab.errors import DatasetError

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


@dataclass(frozen=True, kw_only=True, slots=True)
class CostEntry:
    """One operation's cost in a preset, with where the number comes from."""

    operation: str
    cycles: float
    source: str
    confidence: str
    note: str | None



def parse_cell(value: str, typ: type, nullable: bool, where: str, *, fix: str = "fix the CSV") -> Any:
    """One CSV cell as `typ` (bool is "true"/"false"; "" is None where `nullable`), else a DatasetError saying `fix`."""
    if value == "":
        if nullable:
            return None
        raise DatasetError(f"{where} is empty; this column needs a value; {fix}")
    try:
        if typ is bool:
            if value not in ("true", "false"):
                raise ValueError(value)
            return value == "true"
        return typ(value)
    except ValueError:
        raise DatasetError(f"{where}={value!r} is not a {typ.__name__}; {fix}") from None


def _read_csv(path: Traversable, rel: str, schema: Mapping[str, tuple[type, bool]]) -> list[dict[str, Any]]:
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
        row = {c: parse_cell(v, *schema[c], where=f"datasets/{rel} row {n} column {c}") for c, v in zip(header, raw)}
        if row.get("confidence") not in CONFIDENCE_LEVELS:
            raise DatasetError(f"datasets/{rel} row {n} confidence={row.get('confidence')!r}; "
                               f"must be one of {CONFIDENCE_LEVELS}")
        rows.append(row)
    return rows


def load_table(name: str, *, root: Traversable | str | None = None) -> list[dict[str, Any]]:
    """Rows of a published table as dicts with typed values (a fresh list each call).

    Names: exit_costs, adams_agesen_2006, barham_2003, clark_2005,
    migration_constants, page_walk_refs, cost_presets.
    """
    if name not in TABLE_SCHEMAS:
        raise DatasetError(f"no table named {name!r}; choose from {', '.join(TABLE_SCHEMAS)}")
    rel = f"tables/{name}.csv"
    return _read_csv(_checked(_root(root), rel), rel, TABLE_SCHEMAS[name])


def list_cost_presets(*, root: Traversable | str | None = None) -> list[str]:
    """Names of the cost presets in cost_presets.csv, in file order."""
    return list(dict.fromkeys(r["preset"] for r in load_table("cost_presets", root=root)))


def cost_preset_entries(name: str, *, root: Traversable | str | None = None) -> dict[str, CostEntry]:
    """Operation -> CostEntry (cycles, source, confidence, note) for one preset."""
    rows = [r for r in load_table("cost_presets", root=root) if r["preset"] == name]
    if not rows:
        raise DatasetError(f"no cost preset named {name!r}; choose from {', '.join(list_cost_presets(root=root))}")
    return {r["operation"]: CostEntry(operation=r["operation"], cycles=r["cycles"], source=r["source"],
                                      confidence=r["confidence"], note=r["note"]) for r in rows}


def cost_preset(name: str, *, root: Traversable | str | None = None) -> dict[str, float]:
    """Operation -> cycles for one preset (p4_vtx_2006, modern_kvm, xen_pv)."""
    return {op: e.cycles for op, e in cost_preset_entries(name, root=root).items()}
