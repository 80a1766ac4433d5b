"""I/O benchmarks: the PV block path and the explorer widget's core function."""

from __future__ import annotations

from vmlab.hypervisor.domain import DiskSpec
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, SECTORS_PER_PAGE
from vmlab.io.explore import io_explore
from vmlab.io.hotplug import attach_block
from vmlab.io.system import io_system, new_io_machine

N_REQUESTS = 100_000
BATCH = 32


def bench_pv_block_requests():
    """target <= 1 s: 100,000 block requests (4 KiB, batches of 32: one full ring per notification) through blkfront -> ring -> blkback"""
    hv, d = new_io_machine()
    hv.trace.capacity = 10 * N_REQUESTS  # keep the trace's drop-oldest path out of the measurement
    io = io_system(hv)
    dev = attach_block(io, d, DiskSpec(path="/OVS/bench.img", vdev="xvda"))
    f = dev.front
    pfns = io.alloc_pages(d, BATCH)
    hv.guest_write(d, pfns)
    done = 0
    while done < N_REQUESTS:
        for i in range(BATCH):
            op = BLKIF_OP_WRITE if (done + i) % 2 == 0 else BLKIF_OP_READ
            f.submit(op, ((done + i) % 4096) * SECTORS_PER_PAGE, pfns[i:i + 1], push=False)
        f.kick()
        io.deliver_events(0)
        io.run_backends()
        io.deliver_events(d)
        done += BATCH
    assert len(f.completed) == N_REQUESTS
    c = dev.back.counts
    return (f"{N_REQUESTS} requests, {c['hypercalls']} backend hypercalls, "
            f"{f.counts['notify_sent'] + c['notify_sent']} notifications")


def bench_io_explorer_default():
    """target <= 50 ms: one io_explore() at the widget's default size (128 requests)"""
    io_explore()
    return "pv, 4 KiB, batch 1"


def bench_io_explorer_widget_update():
    """target <= 50 ms: IoExplorer batch-slider update at default size (PV and emulated, 64 requests each)"""
    from vmlab.widgets.io_explorer import IoExplorer
    w = _widget(IoExplorer)
    w.batch.value = 2 if w.batch.value != 2 else 3
    return "io_compare + ColumnDataSource update"


def bench_ring_widget_update():
    """target <= 50 ms: RingVisualizer suppression toggle (re-simulates 24 requests on an 8-slot ring)"""
    from vmlab.widgets.ring import RingVisualizer
    w = _widget(RingVisualizer)
    w.suppression.value = not w.suppression.value
    return "ring_walkthrough + ColumnDataSource update"


_WIDGETS: dict = {}


def _widget(cls):
    # Build once (construction is not what the target is about); time only the update.
    if cls not in _WIDGETS:
        _WIDGETS[cls] = cls()
    return _WIDGETS[cls]
