"""The hypervisor: boots on a host, builds dom0, keeps the domain table.

Boot order, as on a real Xen host:
  1. Xen takes its own frames (image, heap, frame table) and marks them DOMID_XEN.
  2. Xen builds dom0 (domid 0, privileged) with `dom0_mem` and one vCPU per pCPU.
  3. dom0's kernel detects the hardware: it loads a driver for every NIC and disk
     and, as Xen 3's network-bridge script does, renames eth0 to peth0 and
     bridges it as xenbr0 so guests' vifs can plug in.
Everything a guest asks for afterwards goes through `hypercall`.

The public surface hypercall handlers and subsystems use:
  - `register(entry)` adds a hypercall row; its handler may be a closure holding
    the subsystem's own state.
  - `subsystems`: a dict, subsystem name -> that subsystem's per-hypervisor state
    (e.g. "pv_paging", "io"); `subsystem(name, factory)` gets or creates one.
  - `destroy_hooks`: called with a domain before its memory goes back to the heap.
  - `create_domain`, `destroy_domain`, `set_state`, `live_state`, `shutdown_domain`,
    `domain_info`, `guest_write`: the services Xen's common code offers its handlers.
Saving and loading live in `hypervisor/persist.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vmlab.errors import ConfigError, VmlabError
from vmlab.hardware.host import DRIVERS, Host
from vmlab.hardware.memory import FREE, frames_from_mib, mib_from_frames
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainConfig, DomainState
from vmlab.hypervisor.hypercalls import BASE_TABLE, HypercallEntry
from vmlab.hypervisor.hvm_op import HVM_OP_ENTRY
from vmlab.hypervisor.release import reap, release_all, zombie_domids
from vmlab.trace import Trace

__all__ = ["Hypervisor", "HardwareDevice", "DomainInfo", "dom0_kernel_banner"]


def dom0_kernel_banner(memory_kib: int, vcpus: int) -> list[str]:
    """The first console lines of the PV Linux kernel (2.6.18-xen) Xen loads as dom0.

    Xen's construct_dom0 boots the kernel given as a multiboot module; these lines
    are that kernel's console output, kept here as data (guest/linux.py prints the
    same banner for a PV domU).
    """
    major, minor = C.XEN_VERSION
    return ["Linux version 2.6.18-xen (paravirtualized, runs in ring 3 on x86-64)",
            f"Xen version: {major}.{minor}.0 (preserve-AD)",
            f"Memory: {memory_kib}k available",
            f"Brought up {vcpus} CPUs"]


@dataclass(frozen=True, kw_only=True, slots=True)
class HardwareDevice:
    """A physical device as dom0 found it."""

    name: str
    kind: str          # "nic" or "disk"
    driver: str        # the Linux module dom0 loaded
    detail: str        # "bridged as xenbr0", "nfs mounted on /OVS"


@dataclass(frozen=True, kw_only=True, slots=True)
class DomainInfo:
    """What XEN_DOMCTL_getdomaininfo reports (and `xm list` prints)."""

    domid: int
    name: str
    kind: str
    state: str
    flags: str
    tot_pages: int
    max_pages: int
    memory_mib: int
    vcpus: int
    max_vcpus: int
    cpu_time_s: float
    privileged: bool


class Hypervisor:
    """A Xen-style hypervisor running on one `Host`."""

    def __init__(self, host: Host, *, dom0_mem_mib: int = C.DOM0_MEM_MIB, dom0_vcpus: int | None = None,
                 trace_capacity: int = 100_000, saved: dict | None = None) -> None:
        """Boot Xen on `host`; with `saved` (from `save()`), take up that state instead of booting."""
        self.host = host
        self.memory = host.memory
        self.domains: dict[int, Domain] = {}
        self.now_ns = 0
        self.trace = Trace(trace_capacity)
        self.xen_console: list[str] = []
        self.hypercalls: dict[str, HypercallEntry] = {**BASE_TABLE, "hvm_op": HVM_OP_ENTRY}
        self.hardware: list[HardwareDevice] = []
        self.bridges: dict[str, str] = {}
        self._next_domid = 1
        self._write_seq = 0
        # Called with the domain just before its memory goes back to the heap:
        # subsystems that keep per-domain state in Xen's own frames (shadow and
        # nested tables, ...) release it here, as Xen's domain_kill does.
        self.destroy_hooks: list = []
        # Called with (domain, pfns, mfns) before frames leave its physmap (release.py), and the
        # frames off every physmap that something still references: mfn -> owner.
        self.release_hooks: list = []
        self.held: dict[int, int] = {}
        # Each subsystem that records mappings of frames (pins, CR3, grant maps, shadows)
        # registers a function here for the isolation checker (isolation.py).
        self.mapping_sources: dict = {}
        # Per-hypervisor state of subsystems (paging, I/O, ...), by subsystem name.
        self.subsystems: dict[str, object] = {}
        if saved is not None:
            self._take_up(saved)
        else:
            self._boot(dom0_mem_mib, dom0_vcpus if dom0_vcpus is not None else host.pcpus)

    def subsystem(self, name: str, factory):
        """This hypervisor's state for subsystem `name`, made by `factory()` on first use."""
        state = self.subsystems.get(name)
        if state is None:
            state = self.subsystems[name] = factory()
        return state

    # --- persistence: the hypervisor's own fields (persist.py adds host, memory, domains)
    def save(self, *, trace_tail: int = 2000) -> dict:
        return {"now_ns": self.now_ns, "next_domid": self._next_domid, "write_seq": self._write_seq,
                "xen_console": self.xen_console, "bridges": self.bridges,
                "hardware": [asdict(h) for h in self.hardware],
                "trace": self.trace.save()[-trace_tail:], "trace_capacity": self.trace.capacity,
                "held": sorted(self.held.items())}

    def _take_up(self, saved: dict) -> None:
        self.now_ns, self._next_domid, self._write_seq = saved["now_ns"], saved["next_domid"], saved["write_seq"]
        self.xen_console, self.bridges = list(saved["xen_console"]), dict(saved["bridges"])
        self.hardware = [HardwareDevice(**x) for x in saved["hardware"]]
        self.trace = Trace.restore(saved["trace"], saved["trace_capacity"])
        self.domains = {d.domid: d for d in saved.get("domains", ())}
        self.held = {int(m): int(d) for m, d in saved.get("held", ())}

    # --- boot -----------------------------------------------------------------
    def _boot(self, dom0_mem_mib: int, dom0_vcpus: int) -> None:
        total = self.memory.total_frames
        xen_frames = frames_from_mib(C.XEN_IMAGE_MIB) + int(total * C.XEN_FRAMETABLE_FRACTION)
        self.memory.allocate(C.DOMID_XEN, xen_frames, what="Xen's own frames")
        major, minor = C.XEN_VERSION
        self.xen_console += [
            f"(XEN) Xen version {major}.{minor}.0 (vmlab) on {self.host.name}",
            f"(XEN) System RAM: {self.host.spec.memory_mib}MB, {self.host.pcpus} CPUs",
            f"(XEN) Xen reserved {mib_from_frames(xen_frames)}MB (image, heap, frame table)",
        ]
        self.trace.record(time_ns=0, domid=C.DOMID_XEN, kind="boot", detail="xen", value=xen_frames)
        dom0_frames = frames_from_mib(dom0_mem_mib)
        if dom0_frames > self.memory.free_frames:
            raise ConfigError(f"dom0_mem={dom0_mem_mib} MiB does not fit in the {mib_from_frames(self.memory.free_frames)} MiB "
                              "left after Xen; give the host more memory or dom0 less")
        cfg = DomainConfig(name="Domain-0", memory_mib=dom0_mem_mib, vcpus=dom0_vcpus)
        dom0 = Domain(domid=0, config=cfg, privileged=True, max_pages=dom0_frames, target_pages=dom0_frames,
                      vcpus_online=dom0_vcpus, load=0.02)
        dom0.p2m = self.memory.allocate(0, dom0_frames, what="dom0").astype(np.int64)
        self.domains[0] = dom0
        self.xen_console.append(f"(XEN) *** LOADING DOMAIN 0 *** ({dom0_mem_mib}MB, {dom0_vcpus} VCPUs)")
        dom0.console += dom0_kernel_banner(dom0_frames * 4, dom0_vcpus)
        self.set_state(dom0, DomainState.RUNNING)
        self._detect_hardware(dom0)

    def _detect_hardware(self, dom0: Domain) -> None:
        for i, nic in enumerate(self.host.spec.nics):
            bridge = f"xenbr{i}"
            self.bridges[bridge] = f"p{nic.name}"
            self.hardware.append(HardwareDevice(name=nic.name, kind="nic", driver=DRIVERS["nic"],
                                                detail=f"renamed p{nic.name}, bridged as {bridge}"))
            dom0.console.append(f"{DRIVERS['nic']}: {nic.name} {nic.mac} {nic.speed_mbps} Mb/s -> bridge {bridge}")
        for disk in self.host.spec.disks:
            drv = DRIVERS[disk.storage]
            self.hardware.append(HardwareDevice(name=disk.name, kind="disk", driver=drv,
                                                detail=f"{disk.storage.value} storage mounted on {disk.mount}"))
            dom0.console.append(f"{drv}: {disk.name} {disk.size_gib} GiB ({disk.storage.value}) mounted on {disk.mount}")
        for dev in self.hardware:
            self.trace.record(time_ns=self.now_ns, domid=0, kind="detect", detail=f"{dev.name}:{dev.driver}")

    # --- the hypercall gate -----------------------------------------------------
    def register(self, entry: HypercallEntry) -> None:
        """Add a hypercall to this hypervisor's table (paging, grants, events, ...)."""
        self.hypercalls[entry.name] = entry

    def hypercall(self, caller: int, name: str | int, *args, **kwargs) -> int:
        """Enter the hypervisor from domain `caller`. Returns >= 0, or a negative errno."""
        dom = self.domains.get(caller)
        if dom is None or dom.state is DomainState.DYING:
            return C.ESRCH
        name, rc = self.dispatch(dom, name, *args, **kwargs)
        if self.held:
            reap(self)  # frames whose last reference this call dropped go back to the heap
        kind = "refused" if rc == C.EPERM else "hypercall"
        sub = f"({args[0]})" if args and isinstance(args[0], int) else ""
        self.trace.record(time_ns=self.now_ns, domid=caller, kind=kind, detail=f"{name}{sub}", value=int(rc))
        return int(rc)

    def dispatch(self, dom: Domain, name: str | int, *args, **kwargs) -> tuple[str, int]:
        """The gate's rules for one call, without the trace: (name, rc).

        Unknown call -> -ENOSYS; privileged call from an unprivileged domain -> -EPERM;
        a call with more or fewer arguments than the hypercall takes -> -EINVAL.
        Handlers check their own arguments; an exception out of one is a model bug
        and propagates, except a `VmlabError` (a model rule refusing), which is
        -EINVAL. `hypercall` and `multicall` both go through here, so a batched
        call obeys the same rules.
        """
        if isinstance(name, (int, np.integer)):
            name = next((e.name for e in self.hypercalls.values() if e.number == name), str(name))
        entry = self.hypercalls.get(name)
        if entry is None:
            return name, C.ENOSYS
        if entry.privileged and not dom.privileged:
            return name, C.EPERM
        if not entry.accepts(len(args), kwargs):
            return name, C.EINVAL
        try:
            return name, int(entry.handler(self, dom, *args, **kwargs))
        except VmlabError:
            return name, C.EINVAL

    # --- services used by handlers ---------------------------------------------
    def create_domain(self, config: DomainConfig) -> int:
        """A new paused domain with an empty p2m: its domid, or -ENOMEM when domids run out.

        Xen itself knows no names (they live in xend and xenstore): the toolstack
        refuses duplicates before it gets here.
        """
        domid = self._allocate_domid()
        if domid is None:
            return C.ENOMEM
        dom = Domain(domid=domid, config=config, created_ns=self.now_ns, vcpus_online=config.vcpus)
        dom.p2m = np.full(frames_from_mib(config.max_mib), C.INVALID_MFN, dtype=np.int64)
        dom.max_pages = 0
        self.domains[domid] = dom
        self.trace.record(time_ns=self.now_ns, domid=domid, kind="create", detail=config.name)
        return domid

    def _allocate_domid(self) -> int | None:
        # Xen hands out domids in increasing order and wraps below DOMID_FIRST_RESERVED;
        # a zombie (destroyed, frames still referenced) keeps its domid.
        zombies = zombie_domids(self)
        for _ in range(C.DOMID_FIRST_RESERVED):
            d = self._next_domid
            self._next_domid = d + 1 if d + 1 < C.DOMID_FIRST_RESERVED else 1
            if d not in self.domains and d not in zombies:
                return d
        return None

    def destroy_domain(self, dom: Domain) -> int:
        """Xen's domain_kill: hooks release per-domain state (CR3, pins, its tables' references,
        grants, channels), then every frame nothing else references goes back to the heap
        (release.py: frames other domains still reference stay owned until they let go)."""
        self.set_state(dom, DomainState.DYING)
        for hook in list(self.destroy_hooks):
            hook(dom)
        release_all(self, dom)
        reap(self)
        del self.domains[dom.domid]
        self.trace.record(time_ns=self.now_ns, domid=dom.domid, kind="destroy", detail=dom.name)
        return 0

    def set_state(self, dom: Domain, new: DomainState) -> None:
        """Move `dom` to `new` (a legal transition) and trace it."""
        old = dom.state
        if new is old:
            return
        dom.transition(new)
        self.trace.record(time_ns=self.now_ns, domid=dom.domid, kind="state", detail=f"{old.value}->{new.value}")

    @staticmethod
    def live_state(dom: Domain) -> DomainState:
        """Where a domain that is let run goes: running if it has work, else blocked."""
        return DomainState.RUNNING if dom.load > 0 else DomainState.BLOCKED

    def shutdown_domain(self, dom: Domain, reason: int) -> int:
        """Xen's domain_shutdown with a SHUTDOWN_* reason: 0, or -EINVAL if not running."""
        if not dom.is_live:
            return C.EINVAL
        dom.shutdown_reason = reason
        self.set_state(dom, DomainState.CRASHED if reason == C.SHUTDOWN_crash else DomainState.SHUTDOWN)
        return 0

    # --- what guests do to their memory ------------------------------------------
    def guest_write(self, domid: int, pfns) -> None:
        """The guest stores to these pages: each gets new content (a fresh stamp).

        Every store the model simulates goes through here, so log-dirty tracking
        (migration) and save/restore checks see every change.
        """
        dom = self.domains[domid]
        pfns = np.asarray(pfns, dtype=np.int64)
        if pfns.size == 0:
            return
        mfns = dom.p2m[pfns]
        pfns, mfns = pfns[mfns != C.INVALID_MFN], mfns[mfns != C.INVALID_MFN]
        stamps = np.arange(self._write_seq + 1, self._write_seq + 1 + mfns.size, dtype=np.uint64)
        self._write_seq += int(mfns.size)
        self.memory.content[mfns] = (np.uint64(dom.domid) << np.uint64(48)) | stamps
        log = getattr(dom, "dirty_bitmap", None)
        if log is not None:
            log[pfns] = True

    def set_load(self, domid: int, load: float) -> None:
        """How busy the guest's vCPUs are (0 idle .. 1 flat out); idle guests block."""
        if not 0.0 <= load <= 1.0:
            raise ConfigError(f"load={load} is outside 0..1; 0 is idle, 1 keeps every vCPU busy")
        dom = self.domains[domid]
        dom.load = float(load)
        if dom.is_live:
            self.set_state(dom, self.live_state(dom))

    # --- time and scheduling ----------------------------------------------------
    def cpu_shares(self) -> dict[int, float]:
        """pCPUs each domain gets now: the credit scheduler's proportional share.

        Every domain has the default weight (256), so pCPUs are split equally among
        domains that want them (max-min fairness), and no domain gets more than its
        demand (online vCPUs x load) nor more than one pCPU per vCPU.
        """
        demand = {d.domid: d.vcpus_online * d.load for d in self.domains.values()
                  if d.state is DomainState.RUNNING}
        shares = {domid: 0.0 for domid in demand}
        left, active = float(self.host.pcpus), {k for k, v in demand.items() if v > 0}
        while active and left > 1e-12:
            each = left / len(active)
            sated = {k for k in active if demand[k] - shares[k] <= each}
            if not sated:
                for k in active:
                    shares[k] += each
                break
            for k in sated:
                left -= demand[k] - shares[k]
                shares[k] = demand[k]
            active -= sated
        return shares

    def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass, charging CPU time to running domains."""
        if not 0 <= seconds < float("inf"):  # also nan
            raise ConfigError(f"seconds={seconds} is not a finite, non-negative time; time only moves forward")
        for domid, share in self.cpu_shares().items():
            self.domains[domid].cpu_time_s += share * seconds
        self.now_ns += int(round(seconds * 1e9))

    # --- inspection -----------------------------------------------------------
    @property
    def dom0(self) -> Domain:
        return self.domains[0]

    def domain_info(self, dom: Domain) -> DomainInfo:
        tot = self.memory.counts_by_owner().get(dom.domid, 0)  # Xen's d->tot_pages: frames it owns
        return DomainInfo(domid=dom.domid, name=dom.name, kind=dom.kind.value, state=dom.state.value,
                          flags=dom.state.flags, tot_pages=tot, max_pages=dom.max_pages,
                          memory_mib=(tot * 4) // 1024, vcpus=dom.vcpus_online, max_vcpus=dom.config.vcpus,
                          cpu_time_s=dom.cpu_time_s, privileged=dom.privileged)

    def owner_label(self, owner: int) -> str:
        if owner == C.DOMID_XEN:
            return "Xen"
        if owner == FREE:
            return "free"
        dom = self.domains.get(owner)
        return dom.name if dom is not None else f"dom{owner}"

    def memory_columns(self, rows: int = 64) -> dict[str, list]:
        """The memory map as plain columns: every machine frame, coloured by owner.

        Machine memory is drawn as `rows` rows of equal frame ranges (mfn 0 at top
        left); each run of frames with one owner becomes one rectangle per row it
        touches: x0/x1 in [0, 1) of the row, y the row index, plus the run's mfns,
        owner and label. Cost: one pass over the owner array (numpy), so a 64 GiB
        host's 16.7 M frames map in tens of milliseconds.
        """
        starts, lengths, owners = self.memory.runs()
        total = self.memory.total_frames
        per_row = -(-total // rows)
        ends = starts + lengths
        r0, r1 = starts // per_row, (ends - 1) // per_row
        n = r1 - r0 + 1
        idx = np.repeat(np.arange(starts.size), n)
        row = r0[idx] + (np.arange(idx.size) - np.repeat(np.cumsum(n) - n, n))
        seg_start = np.maximum(starts[idx], row * per_row)
        seg_end = np.minimum(ends[idx], (row + 1) * per_row)
        labels = {int(o): self.owner_label(int(o)) for o in np.unique(owners)}
        own = owners[idx]
        return {"x0": ((seg_start - row * per_row) / per_row).tolist(),
                "x1": ((seg_end - row * per_row) / per_row).tolist(),
                "y": row.tolist(), "start_mfn": seg_start.tolist(), "frames": (seg_end - seg_start).tolist(),
                "owner": own.tolist(), "label": [labels[int(o)] for o in own]}

    def check_invariants(self) -> None:
        """Raise AssertionError if the frame accounting or isolation is broken anywhere (isolation.py)."""
        from vmlab.hypervisor.isolation import check
        check(self)
