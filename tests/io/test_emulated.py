"""The HVM comparison: an IDE disk emulated by qemu-dm pays exits per command, whatever the batch."""

from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, VirtualDisk
from vmlab.io.emulated import IDE_COMPLETION_EXITS, IDE_ISSUE_EXITS, IDE_MAX_SECTORS, HvmEmulatedDisk


def test_a_dma_command_costs_issue_and_completion_exits_and_moves_the_data(machine):
    hv, d, io = machine
    disk = HvmEmulatedDisk(io, d, VirtualDisk("/OVS/hvm.img", sectors=4096))
    src, dst = io.alloc_pages(d, 2), io.alloc_pages(d, 2)
    hv.guest_write(d, src)
    assert disk.submit(BLKIF_OP_WRITE, 0, src) == 0 and disk.submit(BLKIF_OP_READ, 0, dst) == 0
    mem, p2m = hv.memory.content, hv.domains[d].p2m
    assert [int(mem[p2m[p]]) for p in dst] == [int(mem[p2m[p]]) for p in src]
    assert disk.counts["exits"] == 2 * (IDE_ISSUE_EXITS + IDE_COMPLETION_EXITS)


def test_a_command_past_the_lba28_sector_count_or_the_image_end_is_an_ide_error(machine):
    """ATA READ/WRITE DMA (LBA28) moves at most 256 sectors; the IDE error bit reads as -1 here."""
    hv, d, io = machine
    disk = HvmEmulatedDisk(io, d, VirtualDisk("/OVS/hvm.img", sectors=64))
    too_many = io.alloc_pages(d, IDE_MAX_SECTORS // 8 + 1)
    assert disk.submit(BLKIF_OP_READ, 0, too_many) == -1
    assert disk.submit(BLKIF_OP_READ, 60, io.alloc_pages(d, 1)) == -1
    assert disk.counts["errors"] == 2 and disk.disk.counts["reads"] == 0


def test_every_ide_register_access_is_an_ioreq_round_trip_to_qemu_dm(machine):
    """Xen 3.4 vmx_vmexit_handler: EXIT_REASON_IO_INSTRUCTION -> handle_mmio -> hvm_send_assist_req;
    qemu-dm answers in the shared ioreq page and notifies back; hvm_io_assist completes it."""
    from vmlab.io.ioreq import ROUND_TRIP, STATE_IOREQ_NONE
    hv, d, io = machine
    disk = HvmEmulatedDisk(io, d, VirtualDisk("/OVS/hvm.img", sectors=4096))
    assert disk.submit(BLKIF_OP_WRITE, 0, io.alloc_pages(d, 1)) == 0
    n = IDE_ISSUE_EXITS + IDE_COMPLETION_EXITS
    assert disk.counts["ioreqs"] == n and disk.counts["notify_sent"] == 2 * n
    assert disk.hops == [h.hop for h in ROUND_TRIP] * n
    assert disk.iopage.state == STATE_IOREQ_NONE and not disk.iopage.crashed
