"""Audit a PV domain's page tables: recount every reference and list what disagrees."""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_P, PTE_RW, pte_frame
from vmlab.paging.pv_hypercalls import pv_state

__all__ = ["audit"]


def audit(hv, domid: int) -> list[str]:
    """Recount every reference from the domain's live tables, pins, CR3 and others' grant mappings.

    An empty list means Xen's invariants hold: each live table's entries map only frames the
    domain may map, RW leaf entries point at writable frames, and every frame's type_count and
    tot_count equal the references that really exist.
    """
    mem = hv.memory
    st = pv_state(hv)
    dom = hv.domains[domid]
    problems: list[str] = []
    live = [int(m) for m in np.flatnonzero((mem.owner == domid) & (mem.type_count > 0)
                                           & np.isin(mem.page_type, [1, 2, 3, 4]))]
    want_type: dict[int, int] = {}
    want_tot: dict[int, int] = {}
    _count_table_entries(mem, dom, live, want_type, want_tot, problems)
    for m in st.pinned:
        if int(mem.owner[m]) == domid:
            want_type[m] = want_type.get(m, 0) + 1
            want_tot[m] = want_tot.get(m, 0) + 1
    for table in (st.cr3, st.user_cr3):
        m = table.get(domid)
        if m is not None:
            want_type[m] = want_type.get(m, 0) + 1
            want_tot[m] = want_tot.get(m, 0) + 1
    for name, source in list(hv.mapping_sources.items()):  # grant mappings hold references too
        if name == "pv_paging":
            continue  # pins and CR3, counted above
        for _holder, m, _w, typed, counted, _via in source(hv)[0]:
            if counted and 0 <= m < mem.total_frames and int(mem.owner[m]) == domid:
                want_type[m] = want_type.get(m, 0) + int(typed)
                want_tot[m] = want_tot.get(m, 0) + 1
    for m in np.flatnonzero((mem.owner == domid) & ((mem.type_count != 0) | (mem.tot_count != 0))).tolist():
        want_type.setdefault(m, 0)
        want_tot.setdefault(m, 0)
    for m, n in want_type.items():
        if int(mem.owner[m]) == domid and int(mem.type_count[m]) != n:
            problems.append(f"frame {m:#x}: type_count {int(mem.type_count[m])} but {n} typed references exist")
    for m, n in want_tot.items():
        if int(mem.owner[m]) == domid and int(mem.tot_count[m]) != n:
            problems.append(f"frame {m:#x}: tot_count {int(mem.tot_count[m])} but {n} references exist")
    return problems


def _count_table_entries(mem, dom, live, want_type: dict, want_tot: dict, problems: list) -> None:
    """The references each present entry of the live tables holds (a read-only self-map: none)."""
    domid = dom.domid
    for m in live:
        level = int(mem.page_type[m])
        words = mem.table(m)
        for i in np.flatnonzero(words & np.uint64(PTE_P)).tolist():
            e = int(words[i])
            f = pte_frame(e)
            if level > 1 and f == m:
                continue   # a read-only self-map (linear page table) holds no reference
            if not 0 <= f < mem.total_frames or (int(mem.owner[f]) != domid and not dom.privileged):
                problems.append(f"L{level} {m:#x}[{i}] maps frame {f:#x} owned by {int(mem.owner[f]) if 0 <= f < mem.total_frames else '?'}")
                continue
            want_tot[f] = want_tot.get(f, 0) + 1
            if level == 1:
                if e & PTE_RW:
                    if int(mem.page_type[f]) != PageType.WRITABLE:
                        problems.append(f"L1 {m:#x}[{i}] maps {PageType(int(mem.page_type[f])).name} frame {f:#x} writable")
                    want_type[f] = want_type.get(f, 0) + 1
            else:
                linear = int(mem.page_type[f]) == level and not e & PTE_RW   # get_lN_linear_pagetable
                if int(mem.page_type[f]) != level - 1 and not linear:
                    problems.append(f"L{level} {m:#x}[{i}] points at a {PageType(int(mem.page_type[f])).name} frame {f:#x}")
                want_type[f] = want_type.get(f, 0) + 1
