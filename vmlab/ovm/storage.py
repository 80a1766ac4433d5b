"""Repositories with Oracle VM 2.x's /OVS layout, their storage kinds, and disk images.

    /OVS/running_pool/<vm>/vm.cfg, System.img   guests
    /OVS/seed_pool/<template>/vm.cfg, System.img templates
    /OVS/iso_pool/<iso>/<iso>.iso                install media
    /OVS/publish_pool/                           guests published as templates
    /OVS/sharedDisk/                             disks shared between guests

A repository sits on one storage kind: local disk (one server's own: its guests
cannot migrate nor be restarted elsewhere), NFS, or an iSCSI / Fibre Channel LUN
formatted OCFS2 (a cluster file system with its own disk heartbeat).

A disk image is a row of extents, each carrying a 64-bit content stamp like the
machine frames of `vmlab.hardware.memory`: (mount epoch << 32) | sequence. Every
start of a guest mounts its image under a new epoch, so `fsck` can tell which
instance wrote which extent: extents from two epochs whose mounts overlapped in
time mean two writers at once — a corrupted file system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.hardware.host import StorageKind
from vmlab.ovm import constants as K

__all__ = ["LAYOUT", "DiskImage", "Mount", "FsckReport", "Repository", "CopyCost", "copy_cost", "copy_rate_Bps"]

LAYOUT = ("running_pool", "seed_pool", "iso_pool", "publish_pool", "sharedDisk")
_EPOCH_SHIFT = np.uint64(32)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mount:
    """One start of a guest on its image: who wrote under which epoch, and when."""

    epoch: int
    writer: str        # "vm1@ovs2"
    opened_s: float
    closed_s: float | None = None

    def overlaps(self, other: "Mount") -> bool:
        end_a = float("inf") if self.closed_s is None else self.closed_s
        end_b = float("inf") if other.closed_s is None else other.closed_s
        return self.opened_s < end_b and other.opened_s < end_a


@dataclass(frozen=True, kw_only=True, slots=True)
class FsckReport:
    path: str
    clean: bool
    writers: tuple[str, ...]     # the concurrent writers whose extents were found
    extents: int                 # extents written by more than one concurrent mount's epochs

    def __str__(self) -> str:
        if self.clean:
            return f"fsck {self.path}: clean"
        return (f"fsck {self.path}: CORRUPT: {self.extents} extents written by concurrent mounts "
                f"{' and '.join(self.writers)}")


@dataclass(eq=False)
class DiskImage:
    path: str
    size_mib: int
    blocks: np.ndarray = field(default=None)     # uint64 content stamps, one per extent
    mounts: list[Mount] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        if self.blocks is None:
            self.blocks = np.zeros(max(1, self.size_mib // K.IMAGE_BLOCK_MIB), dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        return self.size_mib << 20

    def copy(self, path: str) -> "DiskImage":
        """A byte-for-byte copy: same stamps, no mounts (the copy was never started)."""
        return DiskImage(path=path, size_mib=self.size_mib, blocks=self.blocks.copy())

    def fill(self, rng: np.random.Generator) -> None:
        """Give a fresh image content (an installed OS), under epoch 0."""
        self.blocks[:] = rng.integers(1, 1 << 31, size=self.blocks.size, dtype=np.uint64)

    def open(self, writer: str, now_s: float) -> int:
        epoch = 1 + max((m.epoch for m in self.mounts), default=0)
        self.mounts.append(Mount(epoch=epoch, writer=writer, opened_s=now_s))
        return epoch

    def close(self, epoch: int, now_s: float) -> None:
        self.mounts = [Mount(epoch=m.epoch, writer=m.writer, opened_s=m.opened_s, closed_s=now_s)
                       if m.epoch == epoch and m.closed_s is None else m for m in self.mounts]

    def write(self, epoch: int, n: int, rng: np.random.Generator) -> None:
        idx = rng.integers(0, self.blocks.size, size=n)
        stamps = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.uint64) | (np.uint64(epoch) << _EPOCH_SHIFT)
        self.seq += n
        self.blocks[idx] = stamps

    def fsck(self) -> FsckReport:
        """Which mounts' epochs are in the extents; two that overlapped in time = corrupt."""
        epochs = self.blocks >> _EPOCH_SHIFT
        present = {int(e) for e in np.unique(epochs) if e}
        live = [m for m in self.mounts if m.epoch in present]
        bad = sorted({(a.epoch, b.epoch) for a in live for b in live if a.epoch < b.epoch and a.overlaps(b)})
        if not bad:
            return FsckReport(path=self.path, clean=True, writers=(), extents=0)
        involved = sorted({e for pair in bad for e in pair})
        writers = tuple(m.writer for m in self.mounts if m.epoch in involved)
        return FsckReport(path=self.path, clean=False, writers=writers,
                          extents=int(np.isin(epochs, involved).sum()))


@dataclass(eq=False)
class Repository:
    """A storage repository: /OVS (or /var/ovs/mount/<name>) on one storage kind.

    `owner` is the server whose local disk holds it (None: shared by the pool).
    """

    name: str
    mount: str
    kind: StorageKind
    owner: str | None = None
    images: dict[str, DiskImage] = field(default_factory=dict)   # path -> image
    files: dict[str, str] = field(default_factory=dict)          # path -> text (vm.cfg)

    @property
    def shared(self) -> bool:
        return self.kind.shared and self.owner is None

    @property
    def cluster(self) -> str:
        return {StorageKind.NFS: f"NFS (heartbeat file {self.mount}/{K.NFS_HEARTBEAT_FILE})",
                StorageKind.ISCSI: "OCFS2 on an iSCSI LUN (disk heartbeat in the file system)",
                StorageKind.FC: "OCFS2 on a Fibre Channel LUN (disk heartbeat in the file system)",
                StorageKind.LOCAL: f"local disk of {self.owner} (no cluster)"}[self.kind]

    def path(self, pool: str, *parts: str) -> str:
        if pool not in LAYOUT:
            raise ValueError(pool)
        return "/".join((self.mount, pool) + parts)

    def listing(self) -> str:
        """The repository as `find /OVS` would list it (directories of the layout first)."""
        entries = [f"{self.mount}/{d}/" for d in LAYOUT] + sorted(list(self.images) + list(self.files))
        return "\n".join(entries)

    def remove_tree(self, prefix: str) -> None:
        for d in (self.images, self.files):
            for p in [p for p in d if p.startswith(prefix)]:
                del d[p]


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyCost:
    """What copying an image through the Utility Server costs on a storage kind."""

    nbytes: int
    kind: str
    wire_bytes: int      # bytes on the network: read in + written out (0 on local disk)
    seconds: float

    def __str__(self) -> str:
        wire = f", {self.wire_bytes / 2**20:.0f} MiB over the network" if self.wire_bytes else ", no network"
        return f"copied {self.nbytes / 2**20:.0f} MiB on {self.kind} in {self.seconds:.1f} s{wire}"


def copy_rate_Bps(kind: StorageKind) -> float:
    return {StorageKind.NFS: K.GIGABIT_GOODPUT_BPS, StorageKind.ISCSI: K.GIGABIT_GOODPUT_BPS,
            StorageKind.FC: K.FC_4G_BPS, StorageKind.LOCAL: K.LOCAL_DISK_BPS / 2}[kind]


def copy_cost(kind: StorageKind, nbytes: int) -> CopyCost:
    """Read and write `nbytes`: full-duplex links overlap the two; a local disk does both in turn."""
    wire = 0 if kind is StorageKind.LOCAL else 2 * nbytes
    return CopyCost(nbytes=nbytes, kind=kind.value, wire_bytes=wire, seconds=nbytes / copy_rate_Bps(kind))
