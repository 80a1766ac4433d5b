"""The hypervisor: boots on a host, builds dom0, keeps the domain table.

Boot order, as on a real Xen host:
  1. Xen takes its own frames (image, heap, frame table) and marks them DOMID_XEN.
  2. Xen builds dom0 (domid 0, privileged) with `dom0_mem` and one vCPU per pCPU.
  3. dom0's kernel detects the hardware: it loads a driver for every NIC and disk
     and, as Xen 3's network-bridge script does, renames eth0 to peth0 and
     bridges it as xenbr0 so guests' vifs can plug in.
Everything a guest asks for afterwards goes through `hypercall`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.errors import VmlabError
from vmlab.guest.linux import boot_messages, minimum_target
from vmlab.hardware.host import DRIVERS, Host
from vmlab.hardware.memory import FREE, frames_from_mib, mib_from_frames
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainConfig, DomainKind, DomainState, VirtualDevice
from vmlab.hypervisor.hypercalls import BASE_TABLE, HypercallEntry
from vmlab.trace import Trace

__all__ = ["Hypervisor", "HardwareDevice", "DomainInfo"]


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
                 trace_capacity: int = 100_000) -> None:
        self.host = host
        self.memory = host.memory
        self.domains: dict[int, Domain] = {}
        self.now_ns = 0
        self.trace = Trace(trace_capacity)
        self.xen_console: list[str] = []
        self.hypercalls: dict[str, HypercallEntry] = dict(BASE_TABLE)
        self.hardware: list[HardwareDevice] = []
        self.bridges: dict[str, str] = {}
        self._next_domid = 1
        self._write_seq = 0
        # Called with the domain just before its memory goes back to the heap:
        # subsystems that keep per-domain state in Xen's own frames (shadow and
        # nested tables, ...) release it here, as Xen's domain_kill does.
        self.destroy_hooks: list = []
        self._boot(dom0_mem_mib, dom0_vcpus if dom0_vcpus is not None else host.pcpus)

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
            from vmlab.errors import ConfigError
            raise ConfigError(f"dom0_mem={dom0_mem_mib} MiB does not fit in the {mib_from_frames(self.memory.free_frames)} MiB "
                              "left after Xen; give the host more memory or dom0 less")
        cfg = DomainConfig(name="Domain-0", memory_mib=dom0_mem_mib, vcpus=dom0_vcpus)
        dom0 = Domain(domid=0, config=cfg, privileged=True, max_pages=dom0_frames, target_pages=dom0_frames,
                      vcpus_online=dom0_vcpus, load=0.02)
        dom0.p2m = self.memory.allocate(0, dom0_frames, what="dom0").astype(np.int64)
        self.domains[0] = dom0
        self.xen_console.append(f"(XEN) *** LOADING DOMAIN 0 *** ({dom0_mem_mib}MB, {dom0_vcpus} VCPUs)")
        dom0.console += boot_messages("Domain-0", "pv", dom0_frames * 4, dom0_vcpus, C.XEN_VERSION)[:4]
        self._set_state(dom0, DomainState.RUNNING)
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
        kind = "refused" if rc == C.EPERM else "hypercall"
        sub = f"({args[0]})" if args and isinstance(args[0], int) else ""
        self.trace.record(time_ns=self.now_ns, domid=caller, kind=kind, detail=f"{name}{sub}", value=int(rc))
        return int(rc)

    def dispatch(self, dom: Domain, name: str | int, *args, **kwargs) -> tuple[str, int]:
        """The gate's rules for one call, without the trace: (name, rc).

        Unknown call -> -ENOSYS; privileged call from an unprivileged domain -> -EPERM;
        a handler tripping over malformed arguments -> -EINVAL. `hypercall` and
        `multicall` both go through here, so a batched call obeys the same rules.
        """
        if isinstance(name, (int, np.integer)):
            name = next((e.name for e in self.hypercalls.values() if e.number == name), str(name))
        entry = self.hypercalls.get(name)
        if entry is None:
            return name, C.ENOSYS
        if entry.privileged and not dom.privileged:
            return name, C.EPERM
        try:
            return name, int(entry.handler(self, dom, *args, **kwargs))
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, AttributeError, VmlabError):
            return name, C.EINVAL  # a malformed request, never an exception out of the hypervisor

    # --- services used by handlers ---------------------------------------------
    def _create_domain(self, config: DomainConfig, out: dict) -> int:
        # Xen itself knows no names (they live in xend and xenstore): the toolstack
        # refuses duplicates before it gets here.
        domid = self._allocate_domid()
        if domid is None:
            return C.ENOMEM
        dom = Domain(domid=domid, config=config, created_ns=self.now_ns, vcpus_online=config.vcpus)
        dom.p2m = np.full(frames_from_mib(config.max_mib), C.INVALID_MFN, dtype=np.int64)
        dom.max_pages = 0
        self.domains[domid] = dom
        out["domid"] = domid
        self.trace.record(time_ns=self.now_ns, domid=domid, kind="create", detail=config.name)
        return 0

    def _allocate_domid(self) -> int | None:
        # Xen hands out domids in increasing order and wraps below DOMID_FIRST_RESERVED.
        for _ in range(C.DOMID_FIRST_RESERVED):
            d = self._next_domid
            self._next_domid = d + 1 if d + 1 < C.DOMID_FIRST_RESERVED else 1
            if d not in self.domains:
                return d
        return None

    def _destroy_domain(self, dom: Domain) -> int:
        self._set_state(dom, DomainState.DYING)
        for hook in list(self.destroy_hooks):
            hook(dom)
        self.memory.release(dom.mfns(), owner=dom.domid)
        dom.p2m[:] = C.INVALID_MFN
        del self.domains[dom.domid]
        self.trace.record(time_ns=self.now_ns, domid=dom.domid, kind="destroy", detail=dom.name)
        return 0

    def _set_state(self, dom: Domain, new: DomainState) -> None:
        old = dom.state
        if new is old:
            return
        dom.transition(new)
        self.trace.record(time_ns=self.now_ns, domid=dom.domid, kind="state", detail=f"{old.value}->{new.value}")

    @staticmethod
    def _live_state(dom: Domain) -> DomainState:
        return DomainState.RUNNING if dom.load > 0 else DomainState.BLOCKED

    def _guest_shutdown(self, dom: Domain, reason: int) -> int:
        if not dom.is_live:
            return C.EINVAL
        dom.shutdown_reason = reason
        self._set_state(dom, DomainState.CRASHED if reason == C.SHUTDOWN_crash else DomainState.SHUTDOWN)
        return 0

    # --- guest-side actions the model drives -------------------------------------
    def boot_guest(self, domid: int) -> None:
        """The guest kernel starts: console messages, kernel image written to its first pages."""
        dom = self.domains[domid]
        dom.console += boot_messages(dom.name, dom.kind.value, dom.tot_pages * 4, dom.vcpus_online, C.XEN_VERSION)
        populated = np.flatnonzero(dom.p2m != C.INVALID_MFN)
        # ILLUSTRATIVE: the kernel image and early page cache fill ~8 MiB (2048 pages) at boot.
        self.guest_write(domid, populated[: min(populated.size, 2048)])

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
            from vmlab.errors import ConfigError
            raise ConfigError(f"load={load} is outside 0..1; 0 is idle, 1 keeps every vCPU busy")
        dom = self.domains[domid]
        dom.load = float(load)
        if dom.is_live:
            self._set_state(dom, self._live_state(dom))

    def balloon(self, domid: int, target_pages: int) -> int:
        """Set the balloon target; the guest's balloon driver moves toward it. Returns tot_pages.

        A PV guest frees or repopulates pages with memory_op on itself, but never
        goes below `minimum_target` and never above max_pages or what the host has
        free. An HVM guest without PV drivers has no balloon driver and ignores it.
        """
        dom = self.domains[domid]
        dom.target_pages = int(target_pages)
        if dom.kind is DomainKind.HVM or not dom.is_live:
            return dom.tot_pages
        cur = dom.tot_pages
        if target_pages < cur:
            floor = minimum_target(dom.p2m.size, cur)
            give = cur - max(target_pages, floor)
            if give > 0:
                pfns = np.flatnonzero(dom.p2m != C.INVALID_MFN)[::-1][:give]
                self.hypercall(domid, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, pfns.size, pfns)
        elif target_pages > cur:
            want = min(target_pages, dom.max_pages) - cur
            if want > 0:
                pfns = np.flatnonzero(dom.p2m == C.INVALID_MFN)[:want]  # Linux's balloon repopulates its holes
                self.hypercall(domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, pfns.size, pfns)
        self.trace.record(time_ns=self.now_ns, domid=domid, kind="balloon", detail=f"target {target_pages}",
                          value=dom.tot_pages)
        return dom.tot_pages

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
        if seconds < 0:
            from vmlab.errors import ConfigError
            raise ConfigError(f"seconds={seconds} is negative; time only moves forward")
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
        """Raise AssertionError if the frame accounting is inconsistent anywhere."""
        mem = self.memory
        mem.check()
        counts = mem.counts_by_owner()
        assert sum(counts.values()) == mem.total_frames
        seen = np.zeros(mem.total_frames, dtype=bool)
        for dom in self.domains.values():
            mfns = dom.mfns()
            assert counts.get(dom.domid, 0) == mfns.size, f"dom{dom.domid} owns {counts.get(dom.domid, 0)} frames, p2m maps {mfns.size}"
            assert np.all(mem.owner[mfns] == dom.domid), f"dom{dom.domid}'s p2m maps a frame it does not own"
            assert not np.any(seen[mfns]), "a frame appears in two p2m tables"
            seen[mfns] = True
            assert dom.tot_pages <= dom.max_pages or dom.privileged
        known = set(self.domains) | {C.DOMID_XEN, FREE}
        assert set(counts) <= known, f"frames owned by unknown owners {set(counts) - known}"


# --- saving and loading a whole hypervisor (the CLI's state file uses this) ----------

def save_hypervisor(hv: Hypervisor, *, trace_tail: int = 2000) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able meta, arrays) that `load_hypervisor` turns back into an equal Hypervisor."""
    from dataclasses import asdict

    from vmlab.hypervisor.domain import config_to_dict

    spec = hv.host.spec
    meta = {
        "host": {"name": spec.name, "pcpus": spec.pcpus, "memory_mib": spec.memory_mib,
                 "nics": [asdict(n) for n in spec.nics],
                 "disks": [dict(asdict(d), storage=d.storage.value) for d in spec.disks]},
        "now_ns": hv.now_ns, "next_domid": hv._next_domid, "write_seq": hv._write_seq,
        "xen_console": hv.xen_console, "bridges": hv.bridges,
        "hardware": [asdict(h) for h in hv.hardware],
        "trace": hv.trace.save()[-trace_tail:], "trace_capacity": hv.trace.capacity,
        "domains": [{"domid": d.domid, "config": config_to_dict(d.config), "privileged": d.privileged,
                     "state": d.state.value, "max_pages": d.max_pages, "target_pages": d.target_pages,
                     "vcpus_online": d.vcpus_online, "cpu_time_s": d.cpu_time_s, "load": d.load,
                     "shutdown_reason": d.shutdown_reason, "console": d.console[-200:],
                     "devices": [vars(v) for v in d.devices], "created_ns": d.created_ns}
                    for d in hv.domains.values()],
    }
    arrays = {f"mem.{k}": v for k, v in hv.memory.save().items()}
    for d in hv.domains.values():
        arrays[f"p2m.{d.domid}.start"], arrays[f"p2m.{d.domid}.first"] = _p2m_runs(d.p2m)
        arrays[f"p2m.{d.domid}.size"] = np.array([d.p2m.size], dtype=np.int64)
    return meta, arrays


def _p2m_runs(p2m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode a p2m as runs of consecutive mfns (holes are runs of INVALID_MFN): tiny for real guests."""
    if p2m.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    step = np.diff(p2m)
    invalid = p2m == C.INVALID_MFN
    cont = ((step == 1) & ~invalid[:-1] & ~invalid[1:]) | (invalid[:-1] & invalid[1:])
    starts = np.concatenate(([0], np.flatnonzero(~cont) + 1))
    return starts.astype(np.int64), p2m[starts].astype(np.int64)


def _p2m_from_runs(starts: np.ndarray, first: np.ndarray, size: int) -> np.ndarray:
    if size == 0:
        return np.zeros(0, np.int64)
    lengths = np.diff(np.append(starts, size))
    offset = np.arange(size, dtype=np.int64) - np.repeat(starts, lengths)
    base = np.repeat(first, lengths)
    return np.where(base == C.INVALID_MFN, C.INVALID_MFN, base + offset)


def load_hypervisor(meta: dict, arrays: dict[str, np.ndarray]) -> Hypervisor:
    from vmlab.hardware.host import Disk, HostSpec, Nic, StorageKind
    from vmlab.hardware.memory import MachineMemory
    from vmlab.hypervisor.domain import config_from_dict

    h = meta["host"]
    spec = HostSpec(name=h["name"], pcpus=h["pcpus"], memory_mib=h["memory_mib"],
                    nics=tuple(Nic(**n) for n in h["nics"]),
                    disks=tuple(Disk(**dict(d, storage=StorageKind(d["storage"]))) for d in h["disks"]))
    host = Host.__new__(Host)
    host.spec = spec
    host.memory = MachineMemory.restore({k[4:]: v for k, v in arrays.items() if k.startswith("mem.")})
    hv = Hypervisor.__new__(Hypervisor)
    hv.host, hv.memory = host, host.memory
    hv.now_ns, hv._next_domid, hv._write_seq = meta["now_ns"], meta["next_domid"], meta["write_seq"]
    hv.xen_console, hv.bridges = list(meta["xen_console"]), dict(meta["bridges"])
    hv.hardware = [HardwareDevice(**x) for x in meta["hardware"]]
    hv.trace = Trace.restore(meta["trace"], meta["trace_capacity"])
    hv.hypercalls = dict(BASE_TABLE)
    hv.destroy_hooks = []
    hv.domains = {}
    for d in meta["domains"]:
        dom = Domain(domid=d["domid"], config=config_from_dict(d["config"]), privileged=d["privileged"],
                     state=DomainState(d["state"]), max_pages=d["max_pages"], target_pages=d["target_pages"],
                     vcpus_online=d["vcpus_online"], cpu_time_s=d["cpu_time_s"], load=d["load"],
                     shutdown_reason=d["shutdown_reason"], console=list(d["console"]),
                     devices=[VirtualDevice(**v) for v in d["devices"]], created_ns=d["created_ns"])
        k = f"p2m.{dom.domid}"
        dom.p2m = _p2m_from_runs(arrays[f"{k}.start"], arrays[f"{k}.first"], int(arrays[f"{k}.size"][0]))
        hv.domains[dom.domid] = dom
    return hv
