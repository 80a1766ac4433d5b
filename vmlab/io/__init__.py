"""Virtual hardware from dom0: grant tables, event channels, xenstore, rings and split drivers.

    io_system(hv)              the per-hypervisor I/O state (registers grant_table_op, event_channel_op)
    grant_table / event_channel / xenstore / ring / xenbus     the mechanisms
    blkif / netif              the split drivers;  emulated: the HVM (qemu-dm) comparison
    hotplug                    creating device pairs;  costs: counts -> cycles, io_explore
"""

from vmlab.io.blkback import BlkBack
from vmlab.io.blkfront import BlkFront
from vmlab.io.blkif import BlkifRequest, BlkifResponse, BlkifSegment, VirtualDisk
from vmlab.io.costs import DEFAULT_IO_COSTS, IoCosts, cycles_breakdown, io_compare, io_explore
from vmlab.io.emulated import HvmEmulatedDisk
from vmlab.io.event_channel import EventChannels
from vmlab.io.grant_map import GrantTables
from vmlab.io.hotplug import attach_block, attach_emulated_disk, attach_vif, detach_all, detach_device
from vmlab.io.netback import NetBack
from vmlab.io.netfront import NetFront
from vmlab.io.netif import Bridge, EthernetFrame
from vmlab.io.ring import BackRing, FrontRing, SharedRing, ring_columns
from vmlab.io.system import IoSystem, frame_access, io_system, new_io_machine
from vmlab.io.walkthrough import ring_walkthrough
from vmlab.io.xenbus import XenbusState
from vmlab.io.xenstore import Xenstore, XenstoreError

__all__ = [
    "io_system", "IoSystem", "new_io_machine", "GrantTables", "frame_access", "EventChannels", "Xenstore",
    "XenstoreError", "SharedRing", "FrontRing", "BackRing", "ring_columns", "XenbusState", "BlkFront", "BlkBack",
    "BlkifRequest", "BlkifResponse", "BlkifSegment", "VirtualDisk", "NetFront", "NetBack", "Bridge",
    "EthernetFrame", "HvmEmulatedDisk", "IoCosts", "DEFAULT_IO_COSTS", "cycles_breakdown", "io_explore", "io_compare", "ring_walkthrough",
    "attach_block", "attach_vif", "attach_emulated_disk", "detach_device", "detach_all",
]
