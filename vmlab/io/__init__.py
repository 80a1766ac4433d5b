"""Virtual hardware from dom0: grant tables, event channels, xenstore, rings and split drivers.

    bottom   ring, grant_table (entries) -> grant_map (Xen's side) -> grant_ops (hypercall 20),
             event_2l (port layout) -> event_channel (binding, hypercall 32), xenstore_tree -> xenstore,
             xenbus, pricing (counts -> cycles), context (the IoContext drivers see)
    drivers  blkif (protocol) -> blkfront / blkback;  netif (protocol, bridge) -> netfront / netback;
             emulated (the HVM qemu-dm comparison)
    top      hotplug (device pairs) -> system (IoSystem: scheduler, teardown; io_system(hv))
             -> explore (io_explore, io_compare, ring_walkthrough: column dicts for widgets)
"""

from vmlab.io.blkback import BlkBack
from vmlab.io.blkfront import BlkFront
from vmlab.io.blkif import BlkifRequest, BlkifResponse, BlkifSegment, VirtualDisk
from vmlab.io.explore import io_compare, io_explore, ring_walkthrough
from vmlab.io.pricing import DEFAULT_IO_COSTS, IoCosts, cycles_breakdown
from vmlab.io.emulated import HvmEmulatedDisk
from vmlab.io.event_channel import EventChannels
from vmlab.io.grant_map import GrantTables
from vmlab.io.hotplug import attach_block, attach_emulated_disk, attach_vif, detach_all, detach_device
from vmlab.io.netback import NetBack
from vmlab.io.netfront import NetFront
from vmlab.io.netif import Bridge, EthernetFrame
from vmlab.io.ring import BackRing, FrontRing, SharedRing, ring_columns
from vmlab.io.system import IoSystem, frame_access, io_system, new_io_machine
from vmlab.io.xenbus import XenbusState
from vmlab.io.xenstore import Xenstore, XenstoreError

__all__ = [
    "io_system", "IoSystem", "new_io_machine", "GrantTables", "frame_access", "EventChannels", "Xenstore",
    "XenstoreError", "SharedRing", "FrontRing", "BackRing", "ring_columns", "XenbusState", "BlkFront", "BlkBack",
    "BlkifRequest", "BlkifResponse", "BlkifSegment", "VirtualDisk", "NetFront", "NetBack", "Bridge",
    "EthernetFrame", "HvmEmulatedDisk", "IoCosts", "DEFAULT_IO_COSTS", "cycles_breakdown", "io_explore", "io_compare", "ring_walkthrough",
    "attach_block", "attach_vif", "attach_emulated_disk", "detach_device", "detach_all",
]
