"""Copying a guest's request array in, the foreigndom rule, and the undo journal (paging/pv_types.py)."""

import pytest

from vmlab.guest.kernel import boot_kernel
from vmlab.hypervisor import constants as C
from vmlab.paging.pv_types import domain_arg, guest_array, run_atomic, state


def test_guest_array_follows_copy_from_guest():
    assert guest_array([(1, 2)], None, None) == ([(1, 2)], 1, {})
    assert guest_array(42, None, None) == C.EFAULT          # not a buffer Xen can read
    assert guest_array("ab", None, None) == C.EFAULT
    assert guest_array([(1, 2)], 1, []) == C.EFAULT         # results cannot be written back
    assert guest_array([(1, 2)], 2, None) == C.EINVAL       # count past the buffer
    assert guest_array([(1, 2)], -1, None) == C.EINVAL
    assert guest_array([(1, 2)], "1", None) == C.EINVAL


@pytest.fixture
def k():
    return boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)


def test_foreigndom_needs_privilege_as_in_xens_set_foreigndom(k):
    dom = k.hv.domains[k.domid]
    assert domain_arg(k.hv, dom, C.DOMID_SELF) is dom and domain_arg(k.hv, dom, None) is dom
    assert domain_arg(k.hv, dom, 0) == C.EPERM
    assert domain_arg(k.hv, k.hv.dom0, k.domid) is dom and domain_arg(k.hv, k.hv.dom0, 999) == C.ESRCH
    assert domain_arg(k.hv, dom, "x") == C.EINVAL


def test_a_refused_request_is_rolled_back_through_the_journal(k):
    dom = k.hv.domains[k.domid]
    mfn = int(k.p2m[100])
    words = k.mem.table(mfn).copy()

    def half_done(txn):
        txn.write(mfn, 0, 0x1234)
        txn.add_tot(mfn, 1)
        return txn.fail(C.EINVAL, "refused half way")

    assert run_atomic(k.hv, dom, half_done) == C.EINVAL
    assert (k.mem.table(mfn) == words).all() and k.mem.tot_count[mfn] == 0
    assert state(k.hv).last_error == "refused half way"
