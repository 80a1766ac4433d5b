"""The HVM path: the same disk I/O through an emulated IDE controller and qemu-dm in dom0.

An unmodified guest programs a PIIX IDE controller with port I/O. Every access
to an emulated port is a VM exit (EXIT_REASON_IO_INSTRUCTION); Xen's `handle_mmio`
puts it as an ioreq into the vCPU's slot of the shared ioreq page and notifies
qemu-dm (the device model, a process in dom0) over an event channel; qemu-dm
emulates the register, answers in the slot and notifies back; Xen completes it
(`hvm_io_assist`) and the guest resumes (`vmlab.io.ioreq`: five hops per access,
two event-channel notifications). IDE has one command in flight per channel, so
nothing batches: each request pays its round trips no matter how many requests the
guest has queued.

Per request (a READ/WRITE DMA on the primary channel, as Linux's ata_piix and
ata_bmdma drive it) the guest touches:

    issue:      sector count, LBA low/mid/high, device, command (6 port writes),
                bus-master PRD table address, bus-master start (2)
    completion: (interrupt injected) bus-master status read, status clear,
                ATA status read, bus-master stop (4)

Those 12 accesses are an ILLUSTRATIVE count from that programming sequence, not
a measurement; qemu-dm reaches the guest's buffer through its map cache (a
privileged foreign mapping in dom0, not a grant).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlab.errors import ConfigError
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, SECTOR_SIZE, SECTORS_PER_PAGE, VirtualDisk
from vmlab.io.ioreq import IOREQ_READ, IOREQ_TYPE_PIO, IOREQ_WRITE, Ioreq, IoreqSlot, round_trip

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["HvmEmulatedDisk", "IDE_ISSUE_EXITS", "IDE_COMPLETION_EXITS", "IDE_MAX_SECTORS"]

IDE_ISSUE_EXITS = 8        # ILLUSTRATIVE (see module docstring); len(IDE_ISSUE_SEQUENCE)
IDE_COMPLETION_EXITS = 4   # ILLUSTRATIVE; len(IDE_COMPLETION_SEQUENCE)
IDE_MAX_SECTORS = 256      # LBA28 READ/WRITE DMA: a sector count of 0 means 256 (ATA spec)
# The primary channel's ports, in the order the driver touches them (ILLUSTRATIVE sequence; see above):
# (port, dir) -- 0x1f2..0x1f7 task file, 0xc000/0xc004 bus-master command/PRD (PIIX BAR4, as hvmloader maps it).
IDE_ISSUE_SEQUENCE = ((0x1f2, IOREQ_WRITE), (0x1f3, IOREQ_WRITE), (0x1f4, IOREQ_WRITE), (0x1f5, IOREQ_WRITE),
                      (0x1f6, IOREQ_WRITE), (0x1f7, IOREQ_WRITE), (0xc004, IOREQ_WRITE), (0xc000, IOREQ_WRITE))
IDE_COMPLETION_SEQUENCE = ((0xc002, IOREQ_READ), (0xc002, IOREQ_WRITE), (0x1f7, IOREQ_READ), (0xc000, IOREQ_WRITE))


class HvmEmulatedDisk:
    """An IDE disk that qemu-dm emulates for an HVM guest, with exit and ioreq counts."""

    def __init__(self, io: "IoContext", domid: int, disk: VirtualDisk, *, readonly: bool = False) -> None:
        self.io, self.domid, self.disk, self.readonly = io, domid, disk, readonly
        self.frontend_domid = domid
        self.counts = {"requests": 0, "errors": 0, "exits": 0, "ioreqs": 0, "notify_sent": 0, "interrupts": 0,
                       "bytes": 0, "dma_copy_bytes": 0}
        self.iopage = IoreqSlot()      # the guest vCPU's slot of the shared ioreq page
        self.hops: list[str] = []      # every hop of every round trip, for the last request

    def _ioreqs(self, sequence) -> None:
        for port, direction in sequence:
            _, hops = round_trip(self.iopage, Ioreq(addr=port, size=1, dir=direction, type=IOREQ_TYPE_PIO),
                                 device=lambda r: 0x50 if r.dir == IOREQ_READ else r.data)   # 0x50: DRDY, not BSY
            self.hops += hops
            self.counts["exits"] += 1
            self.counts["ioreqs"] += 1
            self.counts["notify_sent"] += 2      # Xen -> qemu-dm and qemu-dm -> Xen

    def submit(self, operation: int, sector: int, pfns: list[int]) -> int:
        """One DMA command over whole pages. Returns 0 or BLKIF-style -1 on error (IDE error bit)."""
        self.counts["requests"] += 1
        nsect = len(pfns) * SECTORS_PER_PAGE
        self.hops = []
        self._ioreqs(IDE_ISSUE_SEQUENCE)
        self._ioreqs(IDE_COMPLETION_SEQUENCE)
        self.counts["interrupts"] += 1
        if operation not in (BLKIF_OP_READ, BLKIF_OP_WRITE) or not 0 < nsect <= IDE_MAX_SECTORS \
                or sector < 0 or sector + nsect > self.disk.sectors or (operation == BLKIF_OP_WRITE and self.readonly):
            self.counts["errors"] += 1
            return -1
        dom = self.io.hv.domains.get(self.domid)
        if dom is None:
            raise ConfigError(f"domain {self.domid} is gone; its emulated disk cannot run")
        content = self.io.hv.memory.content
        for i, pfn in enumerate(pfns):
            mfn = int(dom.p2m[pfn])
            s = sector + i * SECTORS_PER_PAGE
            if operation == BLKIF_OP_WRITE:
                self.disk.write(s, 0, SECTORS_PER_PAGE - 1, int(content[mfn]))
            else:
                content[mfn] = VirtualDisk.page_from_sectors(int(content[mfn]), 0, SECTORS_PER_PAGE - 1,
                                                             self.disk.read(s, 0, SECTORS_PER_PAGE - 1))
        self.counts["bytes"] += nsect * SECTOR_SIZE
        self.counts["dma_copy_bytes"] += nsect * SECTOR_SIZE
        return 0
