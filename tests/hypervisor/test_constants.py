"""Xen's own numbers (xen/include/public/xen.h, errno.h): the table uses them verbatim."""

from vmlab.hypervisor import constants as C


def test_hypercall_numbers_are_xens():
    n = C.HYPERCALL_NUMBERS
    assert (n["mmu_update"], n["memory_op"], n["multicall"], n["xen_version"], n["console_io"]) == (1, 12, 13, 17, 18)
    assert (n["grant_table_op"], n["vcpu_op"], n["sched_op"], n["event_channel_op"], n["domctl"]) == (20, 24, 29, 32, 36)


def test_errnos_are_negative_linux_errnos_and_reserved_domids_are_xens():
    assert (C.EPERM, C.ENOENT, C.ESRCH, C.ENOMEM, C.EFAULT, C.EINVAL, C.ENOSYS) == (-1, -2, -3, -12, -14, -22, -38)
    assert (C.DOMID_FIRST_RESERVED, C.DOMID_SELF, C.DOMID_XEN) == (0x7FF0, 0x7FF0, 0x7FF2)
