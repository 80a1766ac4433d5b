"""Saving and loading a whole hypervisor (the CLI's state file uses this).

Built from each component's own `save()`/`restore()`: the host's spec
(`Host`), machine memory as runs (`MachineMemory`), each domain with its p2m as
runs (`Domain`), and the hypervisor's own fields (`Hypervisor.save`). Subsystem
state (paging, I/O) is not saved: the toolstack rebuilds it from the domains.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.host import Host
from vmlab.hardware.memory import FREE, MachineMemory
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, p2m_runs
from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["save_hypervisor", "load_hypervisor", "consistency_problems"]


def save_hypervisor(hv: Hypervisor, *, trace_tail: int = 2000) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able meta, arrays) that `load_hypervisor` turns back into an equal Hypervisor."""
    meta = dict(hv.save(trace_tail=trace_tail), host=hv.host.save(), domains=[])
    arrays = {f"mem.{k}": v for k, v in hv.memory.save().items()}
    for dom in hv.domains.values():
        dmeta, darrays = dom.save()
        meta["domains"].append(dmeta)
        arrays.update({f"p2m.{dom.domid}.{k}": v for k, v in darrays.items()})
    return meta, arrays


def load_hypervisor(meta: dict, arrays: dict[str, np.ndarray]) -> Hypervisor:
    memory = MachineMemory.restore({k[4:]: v for k, v in arrays.items() if k.startswith("mem.")})
    host = Host.restore(meta["host"], memory)
    domains = []
    for d in meta["domains"]:
        prefix = f"p2m.{d['domid']}."
        domains.append(Domain.restore(d, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
    return Hypervisor(host, saved=dict(meta, domains=domains))


def _mfn_intervals(dom: Domain) -> tuple[np.ndarray, np.ndarray]:
    """(first mfn, length) of each populated p2m run, from the saved runs (no expansion)."""
    if dom._p2m is None and dom._p2m_runs is not None:
        starts, first, size = dom._p2m_runs
    else:
        (starts, first), size = p2m_runs(dom.p2m), dom.p2m.size
    lengths = np.diff(np.append(starts, size))
    keep = first != C.INVALID_MFN
    return first[keep], lengths[keep]


def consistency_problems(hv: Hypervisor) -> list[str]:
    """What makes a loaded hypervisor impossible, checked from the runs (a 64 GiB host stays cheap):
    a domU marked privileged, frames in two p2m tables or outside memory, a p2m naming frames its
    domain does not own, owned-frame counts that do not match the p2m tables."""
    out = [f"domain {d.name} (domid {d.domid}) is marked privileged; only Domain-0 is"
           for d in hv.domains.values() if d.privileged and d.domid != 0]
    mem = hv.memory
    ostarts, olengths, owners = mem.runs()
    counts, held = mem.counts_by_owner(), {}
    for d in hv.held.values():
        held[d] = held.get(d, 0) + 1
    spans = []
    for dom in hv.domains.values():
        first, length = _mfn_intervals(dom)
        if int(length.sum()) + held.get(dom.domid, 0) != counts.get(dom.domid, 0):
            out.append(f"domain {dom.name} owns {counts.get(dom.domid, 0)} frames but its p2m maps {int(length.sum())}")
        if first.size and (first.min() < 0 or (first + length).max() > mem.total_frames):
            out.append(f"domain {dom.name}'s p2m names frames outside machine memory")
            continue
        lo = np.searchsorted(ostarts, first, "right") - 1
        hi = np.searchsorted(ostarts, first + length - 1, "right") - 1
        if np.any(owners[lo] != dom.domid) or np.any(lo != hi):
            out.append(f"domain {dom.name}'s p2m maps frames it does not own")
        spans += [(int(f), int(f + n), dom.name) for f, n in zip(first.tolist(), length.tolist())]
    spans.sort()
    for (a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:  # the most specific finding first
            out.insert(0, f"domains {an} and {bn} share frame {b0:#x}")
            break
    known = set(hv.domains) | {C.DOMID_XEN, FREE} | set(held)
    out += [f"{n} frames belong to domid {o}, which does not exist" for o, n in counts.items() if o not in known]
    return out
