"""What a driver sees of the per-hypervisor I/O state: one small interface, no import upward.

Drivers (blkfront/blkback, netfront/netback, the emulated disk) and hotplug take an
`IoContext`; `vmlab.io.system.IoSystem` is the one class that provides it. Keeping
the interface here lets the drivers sit below the scheduler in the import graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor
    from vmlab.io.event_channel import EventChannels
    from vmlab.io.grant_map import GrantTables
    from vmlab.io.xenstore import Xenstore

__all__ = ["IoContext", "Worker"]


class Worker(Protocol):
    """A backend thread the scheduler runs: returns True while work is left."""

    def process(self, budget: int | None = None) -> bool: ...


class IoContext(Protocol):
    hv: "Hypervisor"
    grants: "GrantTables"
    events: "EventChannels"
    xenstore: "Xenstore"
    disks: dict
    bridges: dict
    devices: dict
    ring_pages: dict
    ready: dict

    def alloc_pages(self, domid: int, n: int) -> list[int]: ...
    def free_pages(self, domid: int, pfns) -> None: ...
    def mfn(self, domid: int, pfn: int) -> int: ...
    def wake(self, worker: Worker) -> None: ...
    def run(self, max_rounds: int = 100_000) -> int: ...
