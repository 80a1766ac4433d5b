"""The isolation invariant, checked from the frame arrays and the recorded mappings alone.

Xen's promise (xen/arch/x86/mm.c get_page_from_l1e / get_page_type, grant_table.c
__gnttab_map_grant_ref): a domain reaches a frame only if it owns it or holds a
grant for it (a privileged domain may map any allocated frame), no page-table frame
is ever mapped writable, and every frame's type_count / tot_count equal the
references that really exist (page-table entries of validated tables, pins, CR3,
grant mappings). A free frame is referenced by nothing, and a frame off every
physmap is one still referenced (`hv.held`, hypervisor/release.py).

This module reads the validated PV tables straight from memory; every other kind of
reference comes from `hv.mapping_sources`: name -> fn(hv) returning (refs, offers),
refs as (holder domid, mfn, writable, typed, counted, via) and offers (grants) as
(grantee, mfn, writable, granter). Shadow and nested tables report their entries
with counted=False (Xen's own tables hold no page references). The hypervisor thus
imports nothing above it.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import FREE, PageType
from vmlab.hardware.mmu import PTE_FRAME_MASK, PTE_P, PTE_RW
from vmlab.hypervisor import constants as C

__all__ = ["check", "violations", "references"]

_TABLES = (int(PageType.L1), int(PageType.L2), int(PageType.L3), int(PageType.L4))


def _table_refs(mem) -> list[tuple]:
    """Every present entry of every validated guest page table (its owner is the holder)."""
    if not mem.words:
        return []
    mfns = np.fromiter(mem.words, dtype=np.int64)
    live = mfns[np.isin(mem.page_type[mfns], _TABLES) & (mem.type_count[mfns] > 0) & (mem.owner[mfns] >= 0)]
    refs = []
    for m in live.tolist():
        level, words, holder = int(mem.page_type[m]), mem.words[m], int(mem.owner[m])
        present = words[(words & np.uint64(PTE_P)) != 0]
        frames = ((present & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
        if level == 1:
            rw = (present & np.uint64(PTE_RW)) != 0
            refs += [(holder, frames[rw], True, True, True, f"L1 {m:#x}"),
                     (holder, frames[~rw], False, False, True, f"L1 {m:#x}")]
        else:
            refs.append((holder, frames, False, True, True, f"L{level} {m:#x}"))
    return refs


def references(hv) -> tuple[list[tuple], set[tuple]]:
    """(refs, offers) from the tables and every registered source."""
    refs, offers = _table_refs(hv.memory), set()
    for source in list(hv.mapping_sources.values()):
        r, o = source(hv)
        refs.extend(r)
        offers.update(o)
    return refs, offers


def _arrays(refs: list[tuple]) -> tuple[np.ndarray, ...]:
    """The refs as parallel arrays (a ref's mfn may be one int or an array of them)."""
    parts = [np.atleast_1d(np.asarray(r[1], dtype=np.int64)) for r in refs]
    sizes = np.array([p.size for p in parts], dtype=np.int64)
    which = np.repeat(np.arange(len(refs)), sizes)
    cols = [np.array([r[k] for r in refs], dtype=np.int64 if k == 0 else bool) for k in (0, 2, 3, 4)]
    mfns = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return (which, mfns) + tuple(c[which] for c in cols)


def violations(hv) -> list[str]:
    """Every broken isolation or accounting rule, one line each (empty: all hold)."""
    mem = hv.memory
    refs, offers = references(hv)
    n = mem.total_frames
    problems: list[str] = []
    which, mfns, holder, writable, typed, counted = _arrays(refs)
    say = lambda k, what: f"{refs[which[k]][5]} of dom{holder[k]} {what}"  # noqa: E731
    inside = (mfns >= 0) & (mfns < n)
    problems += [say(k, f"maps frame {mfns[k]:#x} outside machine memory") for k in np.flatnonzero(~inside)[:5]]
    which, mfns, holder, writable, typed, counted = (a[inside] for a in (which, mfns, holder, writable, typed, counted))
    owner = mem.owner[mfns]
    problems += [say(k, f"maps free frame {mfns[k]:#x}") for k in np.flatnonzero(owner == FREE)[:5]]
    privileged = np.array([bool(getattr(hv.domains.get(int(h)), "privileged", False)) for h in holder.tolist()], bool)
    suspect = np.flatnonzero((owner != holder) & ~(privileged & (owner >= 0)) & (owner != FREE))
    if suspect.size:  # only foreign mappings need the grants: few, looked up one by one
        granted: dict[tuple[int, int], bool] = {}
        for grantee, mfn, w, granter in offers:
            if 0 <= mfn < n and int(mem.owner[mfn]) == granter:
                granted[(grantee, mfn)] = granted.get((grantee, mfn), False) or bool(w)
        for k in suspect.tolist():
            g = granted.get((int(holder[k]), int(mfns[k])))
            if g is None or (writable[k] and not g):
                problems.append(say(k, f"maps frame {mfns[k]:#x} of dom{owner[k]}{' writable' if writable[k] else ''} "
                                       "without owning it or a grant"))
    table = np.isin(mem.page_type[mfns], _TABLES) & (mem.type_count[mfns] > 0)
    problems += [say(k, f"maps page-table frame {mfns[k]:#x} writable") for k in np.flatnonzero(writable & table)[:5]]
    tot = np.bincount(mfns[counted], minlength=n)
    typ = np.bincount(mfns[counted & typed], minlength=n)
    problems += _counts(mem, tot, typ)
    problems += _ownership(hv)
    return problems


def _counts(mem, tot: np.ndarray, typ: np.ndarray) -> list[str]:
    out = []
    for name, have, want in (("tot_count", mem.tot_count, tot), ("type_count", mem.type_count, typ)):
        bad = np.flatnonzero(have != want)
        out += [f"frame {m:#x}: {name} {int(have[m])} but {int(want[m])} references exist" for m in bad[:5].tolist()]
    return out


def _ownership(hv) -> list[str]:
    """Free-frame accounting, physmaps vs owners, held frames, no unknown owners."""
    mem = hv.memory
    out = []
    try:
        mem.check()
    except AssertionError as e:
        out.append(str(e))
    counts = mem.counts_by_owner()
    held_of: dict[int, int] = {}
    for m, d in hv.held.items():
        held_of[d] = held_of.get(d, 0) + 1
        if int(mem.owner[m]) != d or int(mem.tot_count[m]) <= 0:
            out.append(f"held frame {m:#x} of dom{d}: owner {int(mem.owner[m])}, tot_count {int(mem.tot_count[m])}")
    seen = np.zeros(mem.total_frames, dtype=bool)
    for dom in hv.domains.values():
        mfns = dom.mfns()
        owned, want = counts.get(dom.domid, 0), mfns.size + held_of.get(dom.domid, 0)
        if owned != want:
            out.append(f"dom{dom.domid} owns {owned} frames, its p2m maps {mfns.size} and {want - mfns.size} are held")
        if np.any(mem.owner[mfns] != dom.domid):
            out.append(f"dom{dom.domid}'s p2m maps a frame it does not own")
        if np.any(seen[mfns]):
            out.append(f"dom{dom.domid}'s p2m maps a frame another p2m maps")
        seen[mfns] = True
        if dom.tot_pages > dom.max_pages and not dom.privileged:
            out.append(f"dom{dom.domid} has {dom.tot_pages} pages, above max_pages {dom.max_pages}")
    if any(seen[m] for m in hv.held):
        out.append("a held frame is still in a physmap")
    known = set(hv.domains) | {C.DOMID_XEN, FREE} | set(held_of)
    if not set(counts) <= known:
        out.append(f"frames owned by unknown owners {sorted(set(counts) - known)}")
    zombies = set(held_of) - set(hv.domains)
    out += [f"zombie dom{d} owns {counts.get(d, 0)} frames but {held_of[d]} are held" for d in zombies
            if counts.get(d, 0) != held_of[d]]
    return out


def check(hv) -> None:
    """Raise AssertionError naming every violation (Hypervisor.check_invariants calls this)."""
    problems = violations(hv)
    assert not problems, "isolation broken:\n  " + "\n  ".join(problems[:20])
