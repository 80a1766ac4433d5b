"""How dom0 stops, reboots and saves an HVM guest, with and without PV drivers (Xen 3.4).

Xen 3.4 tools/python/xen/xend/XendDomainInfo.py `shutdown`: xend writes
control/shutdown into the guest's xenstore directory, then, for an HVM guest, reads
`HVM_PARAM_CALLBACK_IRQ` (`xc.hvm_get_param`). Zero means no PV drivers listen on
xenstore, so dom0 shuts the domain down from outside with `xc.domain_shutdown`
(libxc: sched_op SCHEDOP_remote_shutdown): a hard stop, a hard reset, or (for
`xm save`, reason "suspend") a suspend that xc_domain_save then reads. Non-zero means
the guest's PV drivers (platform-pci set the callback) act on the request themselves.
"""

import pytest

from helpers import make_xm, pv
from vmlab.errors import DomainStateError
from vmlab.hypervisor import constants as C
from vmlab.io.system import io_system


def _hvm(xm, name="w", **extra):
    return xm.create(pv(name, builder="hvm", memory=256, **extra))


def _sched_ops(xm, domid):
    return [e.detail for e in xm.hv.trace.filter(domid=domid, kind="hypercall") if e.detail.startswith("sched_op")]


def test_xm_shutdown_of_an_hvm_guest_without_pv_drivers_is_a_remote_shutdown_from_dom0():
    # XendDomainInfo.shutdown (Xen 3.4): hvm_get_param(CALLBACK_IRQ) == 0 -> xc.domain_shutdown
    xm = make_xm()
    w = _hvm(xm)
    domid = w.domid
    xm.shutdown("w")
    assert domid not in xm.hv.domains                          # on_poweroff='destroy' reaped it
    assert _sched_ops(xm, domid) == []                         # the guest itself made no sched_op
    assert f"sched_op({C.SCHEDOP_remote_shutdown})" in _sched_ops(xm, 0)
    hvm_ops = [e.detail for e in xm.hv.trace.filter(domid=0, kind="hypercall") if e.detail.startswith("hvm_op")]
    assert hvm_ops == [f"hvm_op({C.HVMOP_get_param})"]          # xend asked for HVM_PARAM_CALLBACK_IRQ first


def test_xm_shutdown_still_writes_control_shutdown_for_an_hvm_guest():
    # XendDomainInfo.shutdown: storeDom("control/shutdown", reason) comes before the HVM check
    xm = make_xm()
    w = _hvm(xm, on_poweroff="preserve")
    xm.shutdown("w")
    xs = io_system(xm.hv).xenstore
    assert xs.nodes[f"/local/domain/{w.domid}/control/shutdown"].value == "poweroff"
    assert w.state.value == "shutdown" and w.shutdown_reason == C.SHUTDOWN_poweroff


def test_xm_save_of_an_hvm_guest_without_pv_drivers_is_a_remote_suspend_not_a_pause(tmp_path):
    # XendCheckpoint.save -> dominfo.shutdown('suspend') -> xc.domain_shutdown(domid, SHUTDOWN_suspend)
    xm = make_xm()
    w = _hvm(xm)
    domid = w.domid
    xm.save("w", str(tmp_path / "w.save"))
    states = [e.detail for e in xm.hv.trace.filter(domid=domid, kind="state")]
    assert "blocked->shutdown" in states or "running->shutdown" in states
    assert "blocked->paused" not in states and "running->paused" not in states   # not paused: suspended
    details = [e.detail for e in xm.hv.trace.filter(domid=0, kind="hypercall")]
    assert f"sched_op({C.SCHEDOP_remote_shutdown})" in details
    assert f"domctl({C.XEN_DOMCTL['pausedomain']})" not in details
    back = xm.restore(str(tmp_path / "w.save"))
    assert back.kind.value == "hvm" and back.is_live


def test_an_hvm_guest_with_pv_drivers_answers_control_shutdown_itself():
    # XendDomainInfo.shutdown: CALLBACK_IRQ != 0 -> xend leaves it to the guest's xenbus watch
    xm = make_xm()
    from vmlab.guest.pv_on_hvm import load_pv_drivers
    w = _hvm(xm)
    load_pv_drivers(xm.hv, w.domid)
    assert w.hvm_params[C.HVM_PARAM_CALLBACK_IRQ] != 0
    domid = w.domid
    xm.shutdown("w")
    assert _sched_ops(xm, domid) == [f"sched_op({C.SCHEDOP_shutdown})"]
    assert f"sched_op({C.SCHEDOP_remote_shutdown})" not in _sched_ops(xm, 0)


def test_xm_reboot_of_an_hvm_guest_without_pv_drivers_is_a_remote_reboot_and_xend_restarts_it():
    xm = make_xm()
    w = _hvm(xm)
    back = xm.reboot("w")
    assert back.domid != w.domid and back.is_live
    assert f"sched_op({C.SCHEDOP_remote_shutdown})" in _sched_ops(xm, 0)


def test_shutdown_messages_no_longer_promise_an_acpi_power_button():
    import inspect
    from vmlab.toolstack import xm as xm_module
    src = inspect.getsource(xm_module)
    assert "ACPI power button" not in src and "simply paused" not in src
