"""Domains: the recipe (`DomainConfig`) and the live thing (`Domain`).

A domain's state follows Xen's six flags as `xm list` prints them (`rbpscd`),
kept here as one state with only Xen's legal transitions:

    running <-> blocked        the guest has work / waits for an event
    running|blocked -> paused  xm pause;   paused -> running|blocked: xm unpause
    running|blocked -> shutdown | crashed   the guest stops itself, or dies
    shutdown -> running|blocked  only a suspended guest, by XEN_DOMCTL_resumedomain
    any -> dying               xm destroy; a dying domain is reaped and gone
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from vmlab.errors import ConfigError, DomainStateError
from vmlab.hypervisor.constants import INVALID_MFN, MAX_VIRT_CPUS

__all__ = ["DomainKind", "DomainState", "DiskSpec", "VifSpec", "DomainConfig", "Domain", "LEGAL_TRANSITIONS"]


class DomainKind(str, Enum):
    PV = "pv"    # paravirtualized: a modified kernel that makes hypercalls
    HVM = "hvm"  # hardware-assisted: unmodified guest, VM exits, a device model in dom0


class DomainState(str, Enum):
    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    DYING = "dying"

    @property
    def flags(self) -> str:
        """The six-letter state column of `xm list`, e.g. 'r-----', '--p---'."""
        return _FLAGS[self]


_FLAGS = {s: "".join(("rbpscd"[j] if j == i else "-") for j in range(6)) for i, s in enumerate(DomainState)}

LEGAL_TRANSITIONS: dict[DomainState, frozenset[DomainState]] = {
    DomainState.RUNNING: frozenset({DomainState.BLOCKED, DomainState.PAUSED, DomainState.SHUTDOWN,
                                    DomainState.CRASHED, DomainState.DYING}),
    DomainState.BLOCKED: frozenset({DomainState.RUNNING, DomainState.PAUSED, DomainState.SHUTDOWN,
                                    DomainState.CRASHED, DomainState.DYING}),
    DomainState.PAUSED: frozenset({DomainState.RUNNING, DomainState.BLOCKED, DomainState.DYING}),
    # A suspended guest (SHUTDOWN_suspend) can be resumed: XEN_DOMCTL_resumedomain.
    DomainState.SHUTDOWN: frozenset({DomainState.DYING, DomainState.RUNNING, DomainState.BLOCKED}),
    DomainState.CRASHED: frozenset({DomainState.DYING}),
    DomainState.DYING: frozenset(),
}

ON_EVENT_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")


@dataclass(frozen=True, kw_only=True, slots=True)
class DiskSpec:
    """One `disk=` entry: 'file:/OVS/running_pool/vm1/System.img,xvda,w'."""

    backend: str = "file"   # file, phy, tap:aio
    path: str = ""
    vdev: str = "xvda"
    mode: str = "w"        # w, r (w! = shared writable)

    @classmethod
    def parse(cls, text: str) -> "DiskSpec":
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 3 or ":" not in parts[0]:
            raise ConfigError(
                f"disk entry {text!r} is not 'type:path,vdev,mode'; write e.g. 'file:/OVS/running_pool/vm1/System.img,xvda,w'")
        target, vdev, mode = parts
        backend, _, path = target.rpartition(":")
        if backend not in ("file", "phy", "tap:aio", "tap:qcow"):
            raise ConfigError(f"disk backend {backend!r} in {text!r} is not one of file, phy, tap:aio, tap:qcow; use 'file:' for an image")
        if mode not in ("w", "r", "w!"):
            raise ConfigError(f"disk mode {mode!r} in {text!r} must be 'w', 'r' or 'w!'")
        vdev = vdev.removeprefix("hd:") if backend else vdev
        return cls(backend=backend, path=path, vdev=vdev.split(":")[0], mode=mode)

    def __str__(self) -> str:
        return f"{self.backend}:{self.path},{self.vdev},{self.mode}"


@dataclass(frozen=True, kw_only=True, slots=True)
class VifSpec:
    """One `vif=` entry: 'bridge=xenbr0,mac=00:16:3e:00:00:01'."""

    bridge: str = "xenbr0"
    mac: str = ""
    vlan: int | None = None

    @classmethod
    def parse(cls, text: str) -> "VifSpec":
        fields: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in str(text).split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"vif item {item!r} in {text!r} is not key=value; write e.g. 'bridge=xenbr0,mac=00:16:3e:01:02:03'")
            fields[key.strip()] = value.strip()
        unknown = set(fields) - {"bridge", "mac", "type", "vlan", "script", "ip", "model"}
        if unknown:
            raise ConfigError(f"vif key {sorted(unknown)[0]!r} in {text!r} is not known; use bridge=, mac=, vlan=")
        mac = fields.get("mac", "").lower()
        if mac and (len(mac.split(":")) != 6 or not all(len(b) == 2 and all(c in "0123456789abcdef" for c in b) for b in mac.split(":"))):
            raise ConfigError(f"mac={mac!r} is not six hex pairs; write e.g. 'mac=00:16:3e:01:02:03'")
        vlan = fields.get("vlan")
        if vlan is not None and not (vlan.isdigit() and 1 <= int(vlan) <= 4094):
            raise ConfigError(f"vlan={vlan!r} must be a VLAN id 1..4094")
        return cls(bridge=fields.get("bridge", "xenbr0"), mac=mac, vlan=int(vlan) if vlan else None)

    def __str__(self) -> str:
        s = f"bridge={self.bridge}"
        if self.mac:
            s += f",mac={self.mac}"
        if self.vlan is not None:
            s += f",vlan={self.vlan}"
        return s


@dataclass(frozen=True, kw_only=True, slots=True)
class DomainConfig:
    """The recipe for one guest, as an xm config file describes it."""

    name: str
    kind: DomainKind = DomainKind.PV
    memory_mib: int = 256
    maxmem_mib: int | None = None
    vcpus: int = 1
    kernel: str = ""
    ramdisk: str = ""
    bootloader: str = ""
    extra: str = ""
    disks: tuple[DiskSpec, ...] = ()
    vifs: tuple[VifSpec, ...] = ()
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "restart"
    # HVM only. xen_platform_pci: qemu-dm offers the Xen platform PCI device (the hook PV
    # drivers bind to; Xen 3.x qemu-dm always offered it, later xm's create.py made it the
    # key `xen_platform_pci`, default 1). device_model: the qemu-dm binary xend starts.
    xen_platform_pci: int = 1
    device_model: str = ""

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 40 or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"name={self.name!r} must be 1-40 letters, digits, '-', '_' or '.'; e.g. name = 'vm1'")
        if self.name.isdigit():
            raise ConfigError(f"name={self.name!r} is all digits and would be read as a domid; add a letter, e.g. 'vm{self.name}'")
        # ILLUSTRATIVE floor: xm itself checks nothing, but no 2.6.18 guest kernel boots in less.
        if not isinstance(self.memory_mib, int) or self.memory_mib < 16:
            raise ConfigError(f"memory={self.memory_mib!r} MiB is below the 16 MiB a guest kernel needs; use e.g. memory = 256")
        if self.maxmem_mib is not None and self.maxmem_mib < self.memory_mib:
            raise ConfigError(f"maxmem={self.maxmem_mib} MiB is below memory={self.memory_mib} MiB; raise maxmem or drop it")
        if not isinstance(self.vcpus, int) or not 1 <= self.vcpus <= MAX_VIRT_CPUS:
            raise ConfigError(f"vcpus={self.vcpus!r} is outside 1..{MAX_VIRT_CPUS} (Xen 3.x MAX_VIRT_CPUS); use e.g. vcpus = 2")
        for key in ("on_poweroff", "on_reboot", "on_crash"):
            if getattr(self, key) not in ON_EVENT_ACTIONS:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of {', '.join(ON_EVENT_ACTIONS)}")
        vdevs = [d.vdev for d in self.disks]
        if len(set(vdevs)) != len(vdevs):
            raise ConfigError(f"disk devices {vdevs} repeat; give each disk its own vdev (xvda, xvdb, ...)")

    @property
    def max_mib(self) -> int:
        return self.maxmem_mib if self.maxmem_mib is not None else self.memory_mib

    def with_(self, **changes) -> "DomainConfig":
        return replace(self, **changes)


@dataclass(kw_only=True)
class VirtualDevice:
    """A frontend in the guest and the dom0 backend it points at."""

    kind: str            # "vif" or "vbd"
    name: str            # vif3.0, xvda
    backend_domid: int   # always 0 here: dom0 serves every device
    backend: str         # "xenbr0 via peth0", "file:/OVS/... on sda (local)"


@dataclass(eq=False)
class Domain:
    """A live domain: identity, memory (p2m), vCPUs, state and accounting."""

    domid: int
    config: DomainConfig
    privileged: bool = False
    state: DomainState = DomainState.PAUSED
    max_pages: int = 0
    target_pages: int = 0
    vcpus_online: int = 1
    cpu_time_s: float = 0.0
    load: float = 0.0          # fraction of each online vCPU the guest wants (0 = idle, blocked)
    shutdown_reason: int | None = None
    console: list[str] = field(default_factory=list)
    devices: list[VirtualDevice] = field(default_factory=list)
    created_ns: int = 0
    # HVMOP_set_param values (index -> value), hvm/params.h; an HVM guest only.
    hvm_params: dict[int, int] = field(default_factory=dict)
    # The p2m (pfn -> mfn, INVALID_MFN for a hole): an array, or runs from a saved
    # state (`restore`) expanded on first read, so a read-only CLI call never builds it.
    _p2m: np.ndarray | None = field(default=None, init=False, repr=False)
    _p2m_runs: tuple | None = field(default=None, init=False, repr=False)

    @property
    def p2m(self) -> np.ndarray:
        if self._p2m is None:
            self._p2m = p2m_from_runs(*self._p2m_runs) if self._p2m_runs else np.empty(0, dtype=np.int64)
            self._p2m_runs = None
        return self._p2m

    @p2m.setter
    def p2m(self, value: np.ndarray) -> None:
        self._p2m, self._p2m_runs = value, None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> DomainKind:
        return self.config.kind

    @property
    def tot_pages(self) -> int:
        if self._p2m is None and self._p2m_runs is not None:
            starts, first, size = self._p2m_runs
            return int(np.diff(np.append(starts, size))[first != INVALID_MFN].sum())
        return int(np.count_nonzero(self.p2m != INVALID_MFN))

    @property
    def memory_mib(self) -> int:
        return (self.tot_pages * 4) // 1024

    def mfns(self) -> np.ndarray:
        return self.p2m[self.p2m != INVALID_MFN]

    def transition(self, new: DomainState) -> None:
        if new not in LEGAL_TRANSITIONS[self.state]:
            raise DomainStateError(
                f"domain {self.name} (id {self.domid}) is {self.state.value}; it cannot become {new.value}"
                + _HINT.get((self.state, new), ""))
        self.state = new

    @property
    def is_live(self) -> bool:
        """Running or blocked: the guest kernel is executing (not paused, stopped or dying)."""
        return self.state in (DomainState.RUNNING, DomainState.BLOCKED)

    # --- persistence (hypervisor/persist.py composes these) ------------------------
    def save(self, *, console_tail: int = 200) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able fields, arrays): the p2m kept as runs of consecutive mfns."""
        meta = {"domid": self.domid, "config": config_to_dict(self.config), "privileged": self.privileged,
                "state": self.state.value, "max_pages": self.max_pages, "target_pages": self.target_pages,
                "vcpus_online": self.vcpus_online, "cpu_time_s": self.cpu_time_s, "load": self.load,
                "shutdown_reason": self.shutdown_reason, "console": self.console[-console_tail:],
                "devices": [vars(v) for v in self.devices], "created_ns": self.created_ns,
                "hvm_params": {str(k): v for k, v in self.hvm_params.items()}}
        if self._p2m is None and self._p2m_runs is not None:
            start, first, size = self._p2m_runs
        else:
            (start, first), size = p2m_runs(self.p2m), self.p2m.size
        return meta, {"start": start, "first": first, "size": np.array([size], dtype=np.int64)}

    @classmethod
    def restore(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Domain":
        d = meta
        dom = cls(domid=d["domid"], config=config_from_dict(d["config"]), privileged=d["privileged"],
                   state=DomainState(d["state"]), max_pages=d["max_pages"], target_pages=d["target_pages"],
                   vcpus_online=d["vcpus_online"], cpu_time_s=d["cpu_time_s"], load=d["load"],
                   shutdown_reason=d["shutdown_reason"], console=list(d["console"]),
                   devices=[VirtualDevice(**v) for v in d["devices"]], created_ns=d["created_ns"],
                   hvm_params={int(k): int(v) for k, v in d.get("hvm_params", {}).items()})
        dom._p2m_runs = (np.asarray(arrays["start"], np.int64), np.asarray(arrays["first"], np.int64),
                         int(arrays["size"][0]))
        return dom


def p2m_runs(p2m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode a p2m as runs of consecutive mfns (holes are runs of INVALID_MFN): tiny for real guests."""
    if p2m.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    step = np.diff(p2m)
    invalid = p2m == INVALID_MFN
    cont = ((step == 1) & ~invalid[:-1] & ~invalid[1:]) | (invalid[:-1] & invalid[1:])
    starts = np.concatenate(([0], np.flatnonzero(~cont) + 1))
    return starts.astype(np.int64), p2m[starts].astype(np.int64)


def p2m_from_runs(starts: np.ndarray, first: np.ndarray, size: int) -> np.ndarray:
    """The inverse of `p2m_runs`."""
    if size == 0:
        return np.zeros(0, np.int64)
    lengths = np.diff(np.append(starts, size))
    offset = np.arange(size, dtype=np.int64) - np.repeat(starts, lengths)
    base = np.repeat(first, lengths)
    return np.where(base == INVALID_MFN, INVALID_MFN, base + offset)


_HINT = {
    (DomainState.PAUSED, DomainState.PAUSED): "; it is already paused",
    (DomainState.PAUSED, DomainState.SHUTDOWN): "; unpause it first so the guest can act on the request",
    (DomainState.RUNNING, DomainState.RUNNING): "; it is not paused",
    (DomainState.BLOCKED, DomainState.RUNNING): "; it is not paused",
}


def config_to_dict(cfg: DomainConfig) -> dict:
    """A JSON-able form of a DomainConfig (devices as their config-file strings)."""
    return {"name": cfg.name, "kind": cfg.kind.value, "memory_mib": cfg.memory_mib, "maxmem_mib": cfg.maxmem_mib,
            "vcpus": cfg.vcpus, "kernel": cfg.kernel, "ramdisk": cfg.ramdisk, "bootloader": cfg.bootloader,
            "extra": cfg.extra, "disks": [str(d) for d in cfg.disks], "vifs": [str(v) for v in cfg.vifs],
            "on_poweroff": cfg.on_poweroff, "on_reboot": cfg.on_reboot, "on_crash": cfg.on_crash,
            "xen_platform_pci": cfg.xen_platform_pci, "device_model": cfg.device_model}


def config_from_dict(d: dict) -> DomainConfig:
    d = dict(d)
    d["kind"] = DomainKind(d["kind"])
    d["disks"] = tuple(DiskSpec.parse(x) for x in d["disks"])
    d["vifs"] = tuple(VifSpec.parse(x) for x in d["vifs"])
    return DomainConfig(**d)
