"""The PV paging rows of the hypercall table: mmu_update, mmuext_op, update_va_mapping, multicall.

`install(hv)` registers them; `pv_state(hv)` installs on first use and returns the
state; `explain(hv)` says why the last refused request was refused.
"""

from __future__ import annotations

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypercalls import HypercallEntry
from vmlab.paging.mmu_update import do_mmu_update, do_update_va_mapping
from vmlab.paging.mmuext import do_mmuext_op
from vmlab.paging.pv_types import PVPagingState, guest_array, state

__all__ = ["install", "pv_state", "explain", "do_multicall"]


def pv_state(hv) -> PVPagingState:
    """The host's PV paging state (created, and the hypercalls registered, on first use)."""
    st = hv.subsystems.get("pv_paging")
    if st is None:
        install(hv)
        st = hv.subsystems["pv_paging"]
    return st


def do_multicall(hv, caller, entries, count=None, out=None) -> int:
    """multicall(list, n): run each entry in order, write its result; a nested multicall is -EINVAL."""
    copied = guest_array(entries, count, out)
    if isinstance(copied, int):
        return copied
    entries, count, out = copied
    results = []
    for k in range(count):
        try:
            op, args = entries[k][0], tuple(entries[k][1])
        except (TypeError, IndexError):
            results.append(C.EINVAL)
            continue
        if op in ("multicall", C.HYPERCALL_NUMBERS["multicall"]):
            rc = C.EINVAL  # multicalls do not nest
        else:
            _, rc = hv.dispatch(caller, op, *args)
        results.append(rc)
    out["results"] = results
    out["done"] = count
    return 0


def install(hv) -> None:
    """Register mmu_update, mmuext_op, update_va_mapping and multicall on `hv`."""
    hv.subsystem("pv_paging", PVPagingState)
    from vmlab.paging import teardown  # the release / destroy / isolation hooks (teardown.py)
    hv.release_hooks.append(lambda dom, pfns, mfns: teardown.on_release(hv, dom, mfns))
    hv.destroy_hooks.append(lambda dom: teardown.on_destroy(hv, dom))
    hv.mapping_sources["pv_paging"] = teardown.references
    for name, fn in (("mmu_update", do_mmu_update), ("mmuext_op", do_mmuext_op),
                     ("update_va_mapping", do_update_va_mapping), ("multicall", do_multicall)):
        hv.register(HypercallEntry(name, C.HYPERCALL_NUMBERS[name], fn))


def explain(hv) -> str:
    """Why the last refused paging request was refused (one line)."""
    return state(hv).last_error


