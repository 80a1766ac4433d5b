"""A physical server: CPUs, machine memory and the devices dom0 will find.

Storage kinds follow Oracle VM Server 2.x: a guest's disk image lives in a
repository on local disk, NFS, iSCSI or Fibre Channel; only the shared kinds let
the guest migrate (vmlab.migration refuses local storage, as Oracle VM does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from vmlab.errors import ConfigError
from vmlab.hardware.memory import MachineMemory, frames_from_mib

__all__ = ["StorageKind", "Nic", "Disk", "HostSpec", "Host", "parse_size_mib"]


class StorageKind(str, Enum):
    LOCAL = "local"
    NFS = "nfs"
    ISCSI = "iscsi"
    FC = "fc"

    @property
    def shared(self) -> bool:
        return self is not StorageKind.LOCAL


# The Linux driver dom0 loads for each kind of device: what "dom0 detects the
# hardware" means in practice (names are real Linux modules; the pairing with a
# given server is illustrative).
DRIVERS = {"nic": "e1000e", StorageKind.LOCAL: "ahci", StorageKind.NFS: "nfs",
           StorageKind.ISCSI: "iscsi_tcp", StorageKind.FC: "qla2xxx"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Nic:
    name: str = "eth0"
    mac: str = "00:1b:21:00:00:01"
    speed_mbps: int = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class Disk:
    """A block device or network filesystem dom0 mounts; guests' images live under `mount`."""

    name: str = "sda"
    storage: StorageKind = StorageKind.LOCAL
    size_gib: int = 250
    mount: str = "/OVS"


@dataclass(frozen=True, kw_only=True, slots=True)
class HostSpec:
    """The recipe for a physical server."""

    name: str = "ovs1"
    pcpus: int = 4
    memory_mib: int = 8192
    nics: tuple[Nic, ...] = (Nic(),)
    # Oracle VM's usual layout: dom0 on a local disk, the /OVS repository (guest
    # images) on shared storage so guests can migrate inside the pool.
    disks: tuple[Disk, ...] = (Disk(name="sda", storage=StorageKind.LOCAL, size_gib=250, mount="/"),
                               Disk(name="nfs0", storage=StorageKind.NFS, size_gib=2048, mount="/OVS"))
    # VT-x/AMD-V present and enabled in the BIOS: Xen then lists hvm-3.0-* in xen_caps and can run HVM guests.
    hvm: bool = True
    cpu_mhz: int = 2400   # ILLUSTRATIVE: the 2.4 GHz core the I/O costs assume (io/pricing.py)

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"host name {self.name!r} must be non-empty letters, digits, '-', '_' or '.'; e.g. 'ovs1'")
        if not 1 <= self.pcpus <= 256:
            raise ConfigError(f"pcpus={self.pcpus} is outside 1..256; give the host between 1 and 256 CPUs")
        if not 256 <= self.memory_mib <= 4 * 1024 * 1024:
            raise ConfigError(f"memory_mib={self.memory_mib} is outside 256 MiB..4 TiB; give the host a real amount of RAM")
        names = [d.name for d in self.nics] + [d.name for d in self.disks]
        if len(set(names)) != len(names):
            raise ConfigError(f"device names {names} repeat; give every NIC and disk its own name")


class Host:
    """A physical server with live machine memory."""

    def __init__(self, spec: HostSpec | None = None, *, memory: MachineMemory | None = None, **kwargs) -> None:
        self.spec = spec if spec is not None else HostSpec(**kwargs)
        self.memory = memory if memory is not None else MachineMemory(frames_from_mib(self.spec.memory_mib))

    def save(self) -> dict:
        """The spec as JSON-able data (the memory saves itself: `MachineMemory.save`)."""
        s = self.spec
        return {"name": s.name, "pcpus": s.pcpus, "memory_mib": s.memory_mib, "hvm": s.hvm, "cpu_mhz": s.cpu_mhz,
                "nics": [asdict(n) for n in s.nics],
                "disks": [dict(asdict(d), storage=d.storage.value) for d in s.disks]}

    @classmethod
    def restore(cls, meta: dict, memory: MachineMemory) -> "Host":
        spec = HostSpec(name=meta["name"], pcpus=meta["pcpus"], memory_mib=meta["memory_mib"],
                        hvm=bool(meta.get("hvm", True)), cpu_mhz=int(meta.get("cpu_mhz", 2400)),
                        nics=tuple(Nic(**n) for n in meta["nics"]),
                        disks=tuple(Disk(**dict(d, storage=StorageKind(d["storage"]))) for d in meta["disks"]))
        return cls(spec, memory=memory)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pcpus(self) -> int:
        return self.spec.pcpus

    def storage_for(self, path: str) -> Disk | None:
        """The disk whose mount point holds `path` (longest prefix), if any."""
        best = None
        for d in self.spec.disks:
            if path == d.mount or path.startswith(d.mount.rstrip("/") + "/"):
                if best is None or len(d.mount) > len(best.mount):
                    best = d
        return best

    def __repr__(self) -> str:
        return f"Host({self.name!r}, pcpus={self.pcpus}, memory_mib={self.spec.memory_mib})"


_UNITS = {"t": 1 << 20, "g": 1 << 10, "m": 1, "k": 1 / 1024, "b": 1 / (1 << 20)}


def parse_size_mib(text: str | int, *, default_unit: str = "m", what: str = "size") -> int:
    """Parse '512', '512m', '2g', '1t', '65536k' into MiB (xm's suffixes t/g/m/k/b)."""
    if isinstance(text, int):
        return text
    s = str(text).strip().lower()
    unit = default_unit
    if s and s[-1] in _UNITS:
        unit, s = s[-1], s[:-1]
    try:
        value = float(s)
    except ValueError:
        raise ConfigError(f"{what}={text!r} is not a size; write a number with an optional t/g/m/k/b suffix, e.g. '512m'") from None
    mib = value * _UNITS[unit]
    if not 0 <= mib < float("inf"):  # nan, inf and '1e400' (a float overflow) are not sizes
        raise ConfigError(f"{what}={text!r} is not a finite, non-negative size; write a number of MiB, e.g. '512m'")
    if mib != int(mib):
        raise ConfigError(f"{what}={text!r} is not a whole, non-negative number of MiB; e.g. '512m' or '2g'")
    return int(mib)
