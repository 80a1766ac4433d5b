"""The Linux guest's side of Lab 1: boot console and the balloon driver (drivers/xen/balloon/balloon.c)."""

from helpers import make_xm, pv
from vmlab.guest.linux import balloon, boot_guest, boot_messages, minimum_target
from vmlab.hypervisor import constants as C


def test_minimum_target_follows_the_linux_balloon_drivers_piecewise_floor():
    mib = lambda m: m * 256   # pages of 4 KiB
    assert [minimum_target(mib(m), mib(m)) // 256 for m in (16, 128, 512, 2048, 8192)] == [16, 72, 168, 360, 552]
    assert minimum_target(mib(2048), 1000) == 1000   # never above the current size ("don't enforce growth")


def test_balloon_moves_toward_the_target_with_memory_op_on_itself():
    xm = make_xm()
    dom = xm.create(pv("vm1", memory=512))
    before = len(xm.hv.trace.events)
    assert balloon(xm.hv, dom.domid, 64 * 256) == 168 * 256   # stops at the floor
    calls = [e for e in xm.hv.trace.events[before:] if e.kind == "hypercall"]
    assert [c.detail for c in calls] == [f"memory_op({C.XENMEM_decrease_reservation})"]
    assert calls[0].domid == dom.domid   # the guest asks, not dom0
    assert balloon(xm.hv, dom.domid, 512 * 256) == 512 * 256
    xm.hv.check_invariants()


def test_hvm_guest_has_no_balloon_driver_and_the_target_is_only_recorded():
    xm = make_xm()
    dom = xm.create(pv("w", memory=256, builder="hvm"))
    assert balloon(xm.hv, dom.domid, 64 * 256) == 256 * 256 and dom.target_pages == 64 * 256


def test_boot_guest_prints_the_pv_banner_and_writes_the_kernel_image():
    xm = make_xm()
    dom = xm.create(pv("vm1", memory=128))
    assert dom.console[:1] == ["Linux version 2.6.18-xen (paravirtualized, runs in ring 3 on x86-64)"]
    assert dom.console[-1] == "vm1 login:"
    assert int((xm.hv.memory.content[dom.mfns()] != 0).sum()) == 2048   # ILLUSTRATIVE 8 MiB image
    assert boot_messages("h", "hvm", 1024, 1, C.XEN_VERSION)[-1] == "h ready"
    n = len(dom.console)
    boot_guest(xm.hv, dom.domid)
    assert len(dom.console) == 2 * n


def test_the_hypervisor_keeps_no_guest_driver():
    xm = make_xm()
    assert not hasattr(xm.hv, "balloon") and not hasattr(xm.hv, "boot_guest")
