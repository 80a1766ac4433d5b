"""Saving and loading a whole hypervisor (the CLI's state file uses this).

Built from each component's own `save()`/`restore()`: the host's spec
(`Host`), machine memory as runs (`MachineMemory`), each domain with its p2m as
runs (`Domain`), and the hypervisor's own fields (`Hypervisor.save`). Subsystem
state (paging, I/O) is not saved: the toolstack rebuilds it from the domains.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.host import Host
from vmlab.hardware.memory import MachineMemory
from vmlab.hypervisor.domain import Domain
from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["save_hypervisor", "load_hypervisor"]


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
