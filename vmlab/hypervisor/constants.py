"""Constants from Xen's public headers, each with where it comes from.

Values marked ILLUSTRATIVE are not Xen's: they are round numbers chosen for teaching
and are named so nobody mistakes them for measurements.
"""

from __future__ import annotations

import errno

# xen/include/public/xen.h: domid_t is uint16; reserved ids.
DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0
DOMID_IO = 0x7FF1
DOMID_XEN = 0x7FF2
DOMID_COW = 0x7FF3
DOMID_INVALID = 0x7FF4
DOMID_IDLE = 0x7FFF

# Negative errno, as every hypercall returns (xen/include/public/errno.h uses Linux's values).
EPERM = -errno.EPERM
ENOENT = -errno.ENOENT
ESRCH = -errno.ESRCH
ENOMEM = -errno.ENOMEM
EFAULT = -errno.EFAULT
EBUSY = -errno.EBUSY
EEXIST = -errno.EEXIST
EINVAL = -errno.EINVAL
ENOSYS = -errno.ENOSYS

# xen/include/public/xen.h hypercall numbers (x86).
HYPERCALL_NUMBERS = {
    "set_trap_table": 0, "mmu_update": 1, "set_gdt": 2, "stack_switch": 3, "set_callbacks": 4,
    "fpu_taskswitch": 5, "sched_op_compat": 6, "dom0_op": 7, "update_descriptor": 10,
    "memory_op": 12, "multicall": 13, "update_va_mapping": 14, "set_timer_op": 15,
    "xen_version": 17, "console_io": 18, "grant_table_op": 20, "vm_assist": 21, "iret": 23,
    "vcpu_op": 24, "mmuext_op": 26, "sched_op": 29, "event_channel_op": 32, "physdev_op": 33,
    "hvm_op": 34, "sysctl": 35, "domctl": 36,
}

# xen/include/public/domctl.h (Xen 3.x numbering).
XEN_DOMCTL = {
    "createdomain": 1, "destroydomain": 2, "pausedomain": 3, "unpausedomain": 4,
    "getdomaininfo": 5, "shadow_op": 10, "max_mem": 11, "setvcpucontext": 12, "max_vcpus": 15,
    "resumedomain": 27,
}

# xen/include/public/memory.h
XENMEM_increase_reservation = 0
XENMEM_decrease_reservation = 1
XENMEM_current_reservation = 3
XENMEM_maximum_reservation = 4
XENMEM_populate_physmap = 6

# xen/include/public/sched.h
SCHEDOP_yield = 0
SCHEDOP_block = 1
SCHEDOP_shutdown = 2
SCHEDOP_remote_shutdown = 4
SHUTDOWN_poweroff = 0
SHUTDOWN_reboot = 1
SHUTDOWN_suspend = 2
SHUTDOWN_crash = 3
SHUTDOWN_watchdog = 4

# xen/include/public/hvm/hvm_op.h and hvm/params.h (Xen 3.4)
HVMOP_set_param = 0
HVMOP_get_param = 1
HVM_PARAM_CALLBACK_IRQ = 0     # how event-channel upcalls reach an HVM guest; 0 = no PV drivers
HVM_PARAM_STORE_PFN = 1
HVM_PARAM_STORE_EVTCHN = 2
HVM_PARAM_IOREQ_PFN = 5        # the shared ioreq page qemu-dm and Xen talk through
HVM_PARAM_BUFIOREQ_PFN = 6
HVM_PARAM_ACPI_S_STATE = 14
HVM_NR_PARAMS = 17             # Xen 3.4 params.h (HVM_PARAM_VPT_ALIGN 16 is the last)

# xen/include/public/vcpu.h
VCPUOP_up = 1
VCPUOP_down = 2
VCPUOP_is_up = 3
# xen/include/public/xen.h (x86, Xen 3.x): vCPUs per guest
MAX_VIRT_CPUS = 32

# xen/include/public/version.h: XENVER_version returns (major << 16) | minor.
XENVER_version = 0
# Oracle VM Server 2.2 ships Xen 3.4 (2.1 shipped 3.1); the model reports 3.4.
XEN_VERSION = (3, 4)

# Credit scheduler (xen/common/sched_credit.c): default weight 256, 30 ms time slice.
CSCHED_DEFAULT_WEIGHT = 256
CSCHED_TSLICE_MS = 30

# p2m entries that hold no frame (Xen's INVALID_MFN is ~0UL).
INVALID_MFN = -1

# --- ILLUSTRATIVE sizes, not measurements -----------------------------------
# Frames Xen keeps for itself: its image, heap and frame table. Real Xen's
# footprint depends on the build and the host; 1/64 of RAM plus 16 MiB is a
# round teaching figure that grows with the host as the frame table does.
XEN_IMAGE_MIB = 16  # ILLUSTRATIVE
XEN_FRAMETABLE_FRACTION = 1 / 64  # ILLUSTRATIVE
# dom0's memory when `dom0_mem=` is not given. Oracle VM Server installs with a
# dom0_mem= boot option; 512 MiB is an illustrative default.
DOM0_MEM_MIB = 512  # ILLUSTRATIVE
# Xen's own MAC prefix for guest NICs (IEEE OUI assigned to XenSource): real.
XEN_MAC_OUI = "00:16:3e"
