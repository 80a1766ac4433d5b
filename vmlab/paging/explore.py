"""Widget-facing functions of paging: plain column dicts, no widgets, no guest.

`reference_order` is the order of a cold 2D walk's memory references, a pure
function of the paging shape. (Grids that need a booted guest live in
`vmlab.guest.explore`.)
"""

from __future__ import annotations

__all__ = ["reference_order"]


def reference_order(*, guest_levels: int = 4, large_nested: bool = False) -> dict[str, list]:
    """The references of a cold 2D walk in order, as columns for the page-walk grid.

    A pure function of the shape (no memory needed): row = guest step (gL4..gL1, data),
    col = nested level (nL4..nL1) or 'guest' for the guest entry read.
    """
    m = 3 if large_nested else 4
    rows, cols, order, kind = [], [], [], []
    k = 0
    names = [f"gL{4 - i}" for i in range(guest_levels)] + ["data"]
    for r, name in enumerate(names):
        for lvl in range(4, 4 - m, -1):
            k += 1
            rows.append(name); cols.append(f"nL{lvl}"); order.append(k); kind.append("nested")
        if name != "data":
            k += 1
            rows.append(name); cols.append("guest"); order.append(k); kind.append("guest")
    return {"row": rows, "col": cols, "order": order, "kind": kind}
