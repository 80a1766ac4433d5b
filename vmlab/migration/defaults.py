"""What `predict_migration` assumes when the user does not say, and where each number comes from.

Every value here is fitted by tools/calibrate_migration.py on the project's real QEMU 7.2 runs
(datasets/measurements/qemu_migration, training split) and written with its provenance to
datasets/tables/qemu_migration_calibrated.csv; tests/migration/test_calibration.py checks that
the numbers below equal that table. `assumptions(...)` words them for the report ("assumed: ...").

- Non-zero memory: a minimal Linux guest (Debian 6.1 kernel, busybox initramfs) holds
  GUEST_BASE_MIB + GUEST_PER_RAM x RAM of non-zero pages besides its working set (kernel text and
  data, struct pages, page tables), and the working set adds GUEST_WSET_SHARE of its size (a little
  less than all: it reuses freed pages that still held data); the rest of RAM was never written
  and QEMU sends it as 9-byte zero-page records. A guest with a page cache full of files has more:
  pass used_mib then.
- Where it lies (`default_top_mib`): memblock allocates top-down at boot, so the top of RAM holds
  a dense block -- the struct page array (64 bytes per 4 KiB page: RAM/64) and the initrd and
  other early allocations (GUEST_TOP_EXTRA_MIB, measured in the first pass of the slow idle
  runs) -- and the rest fills the low part of RAM, GUEST_LOW_DENSITY of its pages data (measured
  likewise; it varies from boot to boot, 31-76%). It matters at the switchover: the end of the
  first pass is data, not zero pages.
- The guest's own dirtying (`GUEST_HOT_PAGES`, `GUEST_HOT_RATE_PAGES_S`): besides the workload a
  running guest re-dirties a small hot set (timer and scheduler state, stacks, the page tables a
  paced loop changes). Real QEMU's dirty-pages-rate shows it: at five syncs a second it exceeds
  what the dirtier alone can dirty by ~500 pages/s, so a run at the knife edge never converges.
  Fitted on the training runs' total time; it sits at the start of the top-of-RAM block.
- The link: when the user names none, a link fast enough for max-bandwidth (10 Gbit/s, or the
  next Ethernet speed above the limit), so that no cap is silent.
"""

from __future__ import annotations

import math

__all__ = ["GUEST_BASE_MIB", "GUEST_PER_RAM", "GUEST_WSET_SHARE", "GUEST_TOP_EXTRA_MIB", "GUEST_LOW_DENSITY",
           "GUEST_HOT_PAGES", "GUEST_HOT_RATE_PAGES_S", "DEFAULTS_TABLE", "default_used_mib",
           "default_top_mib", "default_link_mbps", "link_cap_note", "ETHERNET_MBPS"]

DEFAULTS_TABLE = "datasets/tables/qemu_migration_calibrated.csv"

GUEST_BASE_MIB = 56.3     # calibrated: non-zero MiB of the idle minimal guest besides its working set
GUEST_PER_RAM = 0.0468     # calibrated: extra non-zero MiB per MiB of RAM (struct pages, page tables, ...)
GUEST_WSET_SHARE = 0.938   # calibrated: non-zero MiB the working set adds per MiB (it reuses freed data pages)
GUEST_TOP_EXTRA_MIB = 3.4  # calibrated: the dense block at the top of RAM, beyond RAM/64 (initrd, early allocations)
GUEST_LOW_DENSITY = 0.51   # calibrated: share of data pages in the low part of RAM that holds the rest
GUEST_HOT_PAGES = 50       # calibrated: pages the guest OS re-dirties continually besides the workload
GUEST_HOT_RATE_PAGES_S = 2000.0   # calibrated: its stores per second (uniform over the hot pages)
STRUCT_PAGE_PER_RAM = 1 / 64   # Linux: a 64-byte struct page per 4 KiB page (include/linux/mm_types.h)

ETHERNET_MBPS = (10_000.0, 25_000.0, 40_000.0, 100_000.0, 400_000.0)   # IEEE 802.3 rates


def default_used_mib(memory_mib: float, wws_mib: float) -> float:
    """Non-zero MiB of a minimal Linux guest of `memory_mib` that has written `wws_mib`."""
    return min(float(memory_mib), GUEST_BASE_MIB + GUEST_PER_RAM * memory_mib + GUEST_WSET_SHARE * max(0.0, wws_mib))


def default_top_mib(memory_mib: float) -> float:
    """MiB of data in the dense block at the top of a minimal Linux guest's RAM (struct pages + the rest)."""
    return STRUCT_PAGE_PER_RAM * memory_mib + GUEST_TOP_EXTRA_MIB


def default_link_mbps(max_bandwidth_mib_s: float | None) -> float:
    """The slowest Ethernet speed from 10 Gbit/s up whose TCP goodput carries max-bandwidth."""
    from vmlab.migration.link import TCP_EFFICIENCY
    need = 0.0 if max_bandwidth_mib_s is None else max_bandwidth_mib_s * 2**20 * 8 / 1e6 / TCP_EFFICIENCY
    for mbps in ETHERNET_MBPS:
        if mbps >= need:
            return mbps
    return float(math.ceil(need))


def link_cap_note(max_bandwidth_mib_s: float | None, bandwidth_mbps: float) -> str:
    """One line when max-bandwidth is above what the link carries ('' when it is not)."""
    from vmlab.migration.link import TCP_EFFICIENCY
    goodput = bandwidth_mbps * 1e6 / 8 * TCP_EFFICIENCY / 2**20
    if max_bandwidth_mib_s is None or max_bandwidth_mib_s <= goodput:
        return ""
    return (f"capped: max-bandwidth {max_bandwidth_mib_s:g} MiB/s is above the {bandwidth_mbps:g} Mbit/s link's "
            f"TCP goodput {goodput:.0f} MiB/s, so the link sets the pace (and the switchover threshold); "
            f"give bandwidth_mbps >= {max_bandwidth_mib_s * 2**20 * 8 / 1e6 / TCP_EFFICIENCY:.0f} to honour it")
