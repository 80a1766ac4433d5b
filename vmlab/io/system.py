"""The I/O half of one hypervisor: grant tables, event channels, xenstore, devices.

`io_system(hv)` returns it, creating it (and registering grant_table_op (20) and
event_channel_op (32) on the hypervisor) on first use. `run()` is the little
scheduler that lets every domain's kernel react: it delivers xenstore watch
events (xenbus's xenwatch thread), event-channel upcalls (interrupts) and lets
woken backend threads (blkback, netback) work, until nothing is left to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainState
from vmlab.hypervisor.hypercalls import HypercallEntry
from vmlab.errors import CapacityError
from vmlab.io.context import Worker
from vmlab.io.event_channel import ECS_INTERDOMAIN, VIRQ_TIMER, EventChannels, event_channel_op_handler
from vmlab.io.grant_map import GrantTables
from vmlab.io.grant_ops import grant_table_op_handler
from vmlab.io.grant_table import GTF_permit_access, GTF_reading, GTF_readonly, GTF_type_mask, GTF_writing
from vmlab.io.hotplug import detach_all
from vmlab.io.xenstore import Xenstore

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["IoSystem", "io_system", "frame_access", "new_io_machine", "IO_PAGE_FIRST_PFN"]

# Guest pages the model's drivers use for rings and buffers start here, below the
# top of memory the balloon driver gives back first. ILLUSTRATIVE choice.
IO_PAGE_FIRST_PFN = 4096


class IoSystem:
    """Per-hypervisor I/O state. Everything a domain has here goes in `release_domain`."""

    def __init__(self, hv: "Hypervisor") -> None:
        self.hv = hv
        self.grants = GrantTables(hv)
        self.events = EventChannels(hv)
        self.xenstore = Xenstore(hv)
        self.disks: dict[str, object] = {}        # image path -> VirtualDisk (outlives guests, like a file)
        self.bridges: dict[str, object] = {}      # bridge name -> Bridge
        self.devices: dict[int, list] = {}        # frontend domid -> [BlockDevice | NetDevice | emulated]
        self.ring_pages: dict[int, object] = {}   # mfn -> the SharedRing living in that frame
        self.ready: dict[int, Worker] = {}        # woken backend threads, in wake order
        self._io_pfns: dict[int, set[int]] = {}
        self._releasing: set[int] = set()
        # The handlers are closures over this system's tables: no lookup through the hypervisor.
        hv.register(HypercallEntry("grant_table_op", C.HYPERCALL_NUMBERS["grant_table_op"],
                                   grant_table_op_handler(self.grants)))
        hv.register(HypercallEntry("event_channel_op", C.HYPERCALL_NUMBERS["event_channel_op"],
                                   event_channel_op_handler(self.events)))
        self.events.of(0)
        self.grants.table(0)
        hv.destroy_hooks.append(self._on_destroy)
        hv.mapping_sources["grants"] = lambda hv: grant_references(self.grants)

    def _on_destroy(self, dom) -> None:
        """Any destroy (not only xm's) removes the domain's devices, grants, channels and nodes
        before its frames return to the heap, so no backend keeps a ring in a recycled frame."""
        if dom.domid in self.devices or any(self.leftovers(dom.domid).values()):
            self.release_domain(dom.domid)

    # --- guest pages for rings and buffers ------------------------------------------
    def alloc_pages(self, domid: int, n: int) -> list[int]:
        """Pages a driver in `domid` takes for rings/buffers (its kernel's page allocator)."""
        dom = self.hv.domains[domid]
        used = self._io_pfns.setdefault(domid, set())
        populated = np.flatnonzero(dom.p2m != C.INVALID_MFN)
        start = min(IO_PAGE_FIRST_PFN, populated.size // 2)
        out: list[int] = []
        # Walk the candidates a slice at a time: a driver wants a few pages, and
        # converting a multi-GiB guest's whole pfn list to Python ints costs tens of ms.
        step = max(64, 2 * (n + len(used)))
        for lo in range(start, populated.size, step):
            for pfn in populated[lo:lo + step].tolist():
                if pfn not in used:
                    out.append(pfn)
                    if len(out) == n:
                        break
            if len(out) == n:
                break
        if len(out) < n:
            raise CapacityError(f"domain {domid} has no {n} free pages for I/O buffers; give it more memory")
        used.update(out)
        return out

    def free_pages(self, domid: int, pfns) -> None:
        self._io_pfns.get(domid, set()).difference_update(pfns)

    def mfn(self, domid: int, pfn: int) -> int:
        return int(self.hv.domains[domid].p2m[pfn])

    # --- the scheduler ----------------------------------------------------------------
    def wake(self, worker: Worker) -> None:
        self.ready.setdefault(id(worker), worker)

    def deliver_events(self, domid: int | None = None) -> int:
        """Run pending upcalls (interrupt handlers) of one domain, or of every live one."""
        n = 0
        for d, ev in list(self.events.domains.items()):
            if domid is not None and d != domid:
                continue
            dom = self.hv.domains.get(d)
            if dom is None or dom.state is DomainState.DYING:
                continue
            for v in range(len(ev.vcpus)):
                n += len(ev.upcall(v))
        return n

    def run_backends(self, budget: int | None = None) -> int:
        n = 0
        while self.ready:
            key, worker = next(iter(self.ready.items()))
            del self.ready[key]
            n += 1
            if worker.process(budget):
                self.ready[key] = worker  # more work left: stays runnable
                if budget is not None:
                    break
        return n

    def run(self, max_rounds: int = 100_000) -> int:
        """Let every kernel react until the system is quiet. Returns the rounds taken."""
        self.reap()
        for r in range(max_rounds):
            busy = self.xenstore.deliver_watches()
            busy += self.deliver_events()
            busy += self.run_backends()
            if not busy:
                return r
        return max_rounds

    def timer_tick(self, vcpu: int = 0) -> int:
        """Xen's periodic timer fires: raise VIRQ_TIMER in every domain that bound it. Returns how many."""
        return sum(self.events.raise_virq(d, VIRQ_TIMER, vcpu) for d in list(self.events.domains))

    # --- domains ----------------------------------------------------------------------
    def reap(self) -> None:
        """Forget domains that no longer exist (destroyed without `release_domain`)."""
        known = set(self.hv.domains)
        gone = (set(self.events.domains) | set(self.grants.tables) | set(self.grants.maptrack)
                | set(self.devices) | set(self.xenstore.watches)) - known - self._releasing
        for domid in gone:
            self.release_domain(domid)

    def release_domain(self, domid: int) -> dict[str, int]:
        """Tear down every device of `domid`, then its grants, channels, watches and xenstore nodes."""
        self._releasing.add(domid)  # teardown runs the scheduler, whose reap must not start it again
        try:
            detached = detach_all(self, domid)
            forced = self.grants.release_domain(domid)
            self.events.release_domain(domid)
            nodes = self.xenstore.release_domain(domid) if domid != 0 else 0
        finally:
            self._releasing.discard(domid)
        self._io_pfns.pop(domid, None)
        for key, w in list(self.ready.items()):
            if getattr(w, "frontend_domid", None) == domid:
                del self.ready[key]
        return {"devices": detached, "forced_unmaps": forced, "xenstore_nodes": nodes}

    def check(self) -> None:
        """Assert the I/O bookkeeping is consistent (grant pins, maptracks, channels, live domains)."""
        pins: dict[tuple[int, int], list[int]] = {}
        for grantee, mt in self.grants.maptrack.items():
            by_mfn: dict[int, list[int]] = {}
            for granter, ref, mfn, ro in mt.handles.values():
                c = pins.setdefault((granter, ref), [0, 0])
                c[0 if ro else 1] += 1
                b = by_mfn.setdefault(mfn, [0, 0])
                b[0 if ro else 1] += 1
            assert by_mfn == mt.by_mfn, f"dom{grantee}'s maptrack index disagrees with its handles"
        for domid, t in self.grants.tables.items():
            for ref in range(t.nr_entries):
                ro, rw = pins.get((domid, ref), (0, 0))
                assert (t.pin_read[ref], t.pin_write[ref]) == (ro, rw), f"dom{domid} ref {ref}: pins disagree with maps"
                assert bool(t.flags[ref] & GTF_writing) == (rw > 0), f"dom{domid} ref {ref}: GTF_writing wrong"
                assert bool(t.flags[ref] & GTF_reading) == (ro + rw > 0), f"dom{domid} ref {ref}: GTF_reading wrong"
        for domid, d in self.events.domains.items():
            for port, st in enumerate(d.state):
                if st == ECS_INTERDOMAIN:
                    r = self.events.domains.get(d.remote_dom[port])
                    assert r is not None and r.remote_port.get(d.remote_port[port]) == port, \
                        f"dom{domid} port {port}: the other end does not point back"

    def leftovers(self, domid: int) -> dict[str, int]:
        """What still names `domid`: all zero after release (the destroy property)."""
        xs = self.xenstore
        return {"grants": self.grants.live_grants(domid), "mappings": self.grants.live_mappings(domid),
                "foreign_mappings": sum(1 for mt in self.grants.maptrack.values()
                                        for g, *_ in mt.handles.values() if g == domid),
                "ports": self.events.open_ports(domid), "watches": xs.watch_count(domid),
                "xenstore_nodes": len(xs.nodes_of(domid)), "devices": len(self.devices.get(domid, []))}


def io_system(hv: "Hypervisor") -> IoSystem:
    """The IoSystem of `hv`, created (hypercalls registered) on first use.

    It lives in the hypervisor's per-subsystem state (`hv.subsystems["io"]`), so the two
    live and die together; everything else in io/ reaches its state through the objects
    IoSystem creates (closures for the hypercall handlers, the IoContext for drivers).
    """
    return hv.subsystem("io", lambda: IoSystem(hv))


def frame_access(hv: "Hypervisor", domid: int, mfn: int, *, write: bool = False) -> int:
    """0 if domain `domid` may touch machine frame `mfn`, else -EPERM (see GrantTables.frame_access)."""
    return io_system(hv).grants.frame_access(domid, mfn, write=write)


def grant_references(g: GrantTables) -> tuple[list[tuple], set[tuple]]:
    """For the isolation checker: every grant mapping (maptrack) and every offer (grant entry)."""
    refs = [(holder, mfn, not ro, not ro, True, f"grant map {granter}:{ref}")
            for holder, mt in g.maptrack.items() for granter, ref, mfn, ro in mt.handles.values()]
    offers = set()
    for granter, t in g.tables.items():
        for ref in range(len(t.flags)):
            f = t.flags[ref]
            if f & GTF_type_mask == GTF_permit_access:
                offers.add((t.domid_of[ref], t.frame[ref], not f & GTF_readonly, granter))
    return refs, offers


def new_io_machine(*, kind: str = "pv", host_mib: int = 1024, dom0_mib: int = 256, guest_mib: int = 128,
                   name: str = "guest1", seed: int | None = None) -> tuple["Hypervisor", int]:
    """A small host with dom0 and one running guest built by hypercalls (no toolstack, no devices).

    For labs, widgets and benchmarks that need a machine to push I/O through.
    Returns (hv, domid).
    """
    from vmlab.hardware.host import Host, HostSpec
    from vmlab.hardware.memory import frames_from_mib
    from vmlab.hypervisor.domain import DomainConfig, DomainKind
    from vmlab.hypervisor.hypervisor import Hypervisor

    hv = Hypervisor(Host(HostSpec(memory_mib=host_mib)), dom0_mem_mib=dom0_mib)
    cfg = DomainConfig(name=name, kind=DomainKind(kind), memory_mib=guest_mib)
    out: dict = {}
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, cfg, out)
    domid = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_vcpus"], domid, 1)
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], domid, guest_mib * 1024)
    pfns = np.arange(frames_from_mib(guest_mib), dtype=np.int64)
    hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, domid, pfns.size, pfns)
    hv.set_load(domid, 0.5)
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], domid)
    io_system(hv).xenstore.introduce_domain(domid, name, memory_kib=guest_mib * 1024)
    return hv, domid
