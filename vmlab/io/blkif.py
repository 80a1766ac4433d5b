"""The block split driver's shared protocol: records, constants, the disk image.

blkfront.py is the guest's half, blkback.py dom0's half (Linux xen-blkfront.c / blkback).

A request (xen/include/public/io/blkif.h) names an operation, a start sector and
up to 11 segments, each a granted guest page and the 512-byte sectors used in it:

    blkif_request:  operation u8 | nr_segments u8 | handle u16 | id u64 | sector_number u64
                    seg[11]: { gref u32, first_sect u8, last_sect u8 }        (112 bytes)
    blkif_response: id u64 | operation u8 | status s16

blkfront grants each buffer page (read-only for a WRITE, since dom0 only reads
it; writable for a READ), puts the request on the ring and notifies only when the
ring says so. blkback maps the grants (one grant_table_op for all segments),
does the I/O on the image, unmaps, answers on the ring. A request it cannot
honour (bad op, too many segments, a grant it cannot map) gets BLKIF_RSP_ERROR
and never reaches the disk.
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

from vmlab.errors import ConfigError
from vmlab.hardware.memory import PAGE_SIZE
from vmlab.io.grant_table import mix_stamp

__all__ = ["BlkifSegment", "BlkifRequest", "BlkifResponse", "VirtualDisk", "new_counts",
           "BLKIF_OP_READ", "BLKIF_OP_WRITE", "BLKIF_OP_WRITE_BARRIER", "BLKIF_OP_FLUSH_DISKCACHE",
           "BLKIF_RSP_OKAY", "BLKIF_RSP_ERROR", "BLKIF_RSP_EOPNOTSUPP", "BLKIF_MAX_SEGMENTS_PER_REQUEST",
           "SECTOR_SIZE", "SECTORS_PER_PAGE", "DEFAULT_IMAGE_SECTORS", "vbd_devid"]

BLKIF_OP_READ = 0
BLKIF_OP_WRITE = 1
BLKIF_OP_WRITE_BARRIER = 2
BLKIF_OP_FLUSH_DISKCACHE = 3
BLKIF_RSP_EOPNOTSUPP = -2
BLKIF_RSP_ERROR = -1
BLKIF_RSP_OKAY = 0
BLKIF_MAX_SEGMENTS_PER_REQUEST = 11
SECTOR_SIZE = 512
SECTORS_PER_PAGE = PAGE_SIZE // SECTOR_SIZE  # 8
# A disk= image's size when nothing says otherwise: 10 GiB. ILLUSTRATIVE.
DEFAULT_IMAGE_SECTORS = 10 * (1 << 30) // SECTOR_SIZE
XEN_BLKIF_MAJOR = 202  # the xvd major number (Linux drivers/block/xen-blkfront.c)


def vbd_devid(vdev: str) -> int:
    """Xenstore device id of a virtual disk: xvda -> 51712 (202 << 8), xvdb -> 51728, hda -> 768."""
    name = vdev.removeprefix("/dev/")
    if name.startswith(("xvd", "sd", "hd")) and len(name) >= 3:
        prefix = name[:3] if name.startswith("xvd") else name[:2]
        letters = name[len(prefix):].rstrip("0123456789")
        part = name[len(prefix) + len(letters):]
        if len(letters) == 1 and letters.isalpha():
            disk = ord(letters) - ord("a")
            p = int(part) if part else 0
            if prefix == "xvd":
                return (XEN_BLKIF_MAJOR << 8) | (disk << 4) | p
            if prefix == "hd":
                return ((3 if disk < 2 else 22) << 8) | ((disk % 2) << 6) | p
            return (8 << 8) | (disk << 4) | p
    raise ConfigError(f"virtual device {vdev!r} is not xvdX, hdX or sdX; name the disk e.g. 'xvda'")


# The ring records are NamedTuples, not dataclasses: a hundred thousand requests a
# second are built on the hot path and a tuple is several times cheaper to make.
class BlkifSegment(NamedTuple):
    gref: int
    first_sect: int = 0
    last_sect: int = SECTORS_PER_PAGE - 1


class BlkifRequest(NamedTuple):
    operation: int
    id: int
    sector_number: int
    seg: tuple = ()
    handle: int = 0
    nr_segments: int = -1  # -1: len(seg); a lying value is a malformed request

    @property
    def nsegs(self) -> int:
        return len(self.seg) if self.nr_segments < 0 else self.nr_segments


class BlkifResponse(NamedTuple):
    id: int
    operation: int
    status: int


class VirtualDisk:
    """A disk image on a host disk (a file under /OVS, or a phy: device): 512-byte sectors.

    Each written sector holds `page_stamp << 3 | sector_in_page`, so a page written
    whole and read back whole gets its exact stamp back, and any other mix of
    sectors reads as a new stamp derived from exactly those sectors.
    """

    def __init__(self, path: str, *, sectors: int = DEFAULT_IMAGE_SECTORS, storage: str = "local") -> None:
        if sectors <= 0:
            raise ConfigError(f"image {path!r}: sectors={sectors} must be positive")
        self.path = path
        self.sectors = int(sectors)
        self.storage = storage
        self.data: dict[int, int] = {}
        self.counts = {"reads": 0, "writes": 0, "sectors_read": 0, "sectors_written": 0}

    def write(self, sector: int, first: int, last: int, page_stamp: int) -> None:
        n = last - first + 1
        v0 = (page_stamp << 3) | first  # sector values page_stamp<<3|k for k = first..last are consecutive
        self.data.update(zip(range(sector, sector + n), range(v0, v0 + n)))
        c = self.counts
        c["writes"] += 1
        c["sectors_written"] += n

    def read(self, sector: int, first: int, last: int) -> list[int]:
        n = last - first + 1
        c = self.counts
        c["reads"] += 1
        c["sectors_read"] += n
        return list(map(self.data.get, range(sector, sector + n), repeat(0, n)))

    @staticmethod
    def page_from_sectors(old_stamp: int, first: int, last: int, values: list[int]) -> int:
        """The stamp of a page after `values` land in its sectors first..last."""
        if first == 0 and last == SECTORS_PER_PAGE - 1:
            v0 = values[0]
            if not any(values):
                return 0
            if v0 & 7 == 0 and values == list(range(v0, v0 + SECTORS_PER_PAGE)):
                return v0 >> 3  # a whole page that was written as a whole: the same bytes come back
        return mix_stamp(old_stamp, first, last, *values)

    def stamp_of(self, sector: int, nsect: int = SECTORS_PER_PAGE) -> int:
        """The page stamp a full-page read at `sector` would produce (for checks)."""
        return self.page_from_sectors(0, 0, nsect - 1, [self.data.get(sector + i, 0) for i in range(nsect)])


def new_counts() -> dict[str, int]:
    return {"requests": 0, "responses": 0, "errors": 0, "hypercalls": 0, "notify_sent": 0, "notify_suppressed": 0,
            "grant_maps": 0, "grant_unmaps": 0, "grants_issued": 0, "bytes": 0, "segments": 0, "upcalls": 0,
            "batches": 0}
