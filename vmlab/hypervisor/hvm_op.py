"""hvm_op (hypercall 34): HVMOP_set_param / HVMOP_get_param, as Xen 3.4's `do_hvm_op` (xen/arch/x86/hvm/hvm.c).

The argument is a `struct xen_hvm_param {domid, index, value}` (a dict here, copied
in and, for get_param, back out into "value"). The rules, in Xen's order:
index >= HVM_NR_PARAMS -> -EINVAL; `rcu_lock_target_domain_by_id`: DOMID_SELF or a
domain the caller is privileged for (-ESRCH unknown, -EPERM not privileged); the
target must be an HVM domain (-EINVAL). Setting HVM_PARAM_CALLBACK_IRQ is what a
guest's platform-pci driver does when PV drivers load (`hvm_set_callback_via`): from
then on event-channel upcalls reach it, and xend's `shutdown` leaves control/shutdown
to the guest.
"""

from __future__ import annotations

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainKind
from vmlab.hypervisor.hypercalls import HypercallEntry, _target, guest_struct

__all__ = ["do_hvm_op", "has_pv_drivers", "HVM_OP_ENTRY"]


def has_pv_drivers(dom: Domain) -> bool:
    """xend's test in XendDomainInfo.shutdown: hvm_get_param(CALLBACK_IRQ) != 0."""
    return dom.kind is DomainKind.HVM and dom.hvm_params.get(C.HVM_PARAM_CALLBACK_IRQ, 0) != 0


def do_hvm_op(hv, caller: Domain, cmd: int, arg=None) -> int:
    if cmd not in (C.HVMOP_set_param, C.HVMOP_get_param) or isinstance(cmd, bool):
        return C.ENOSYS
    if not guest_struct(arg) or not {"domid", "index"} <= set(arg):
        return C.EFAULT
    if not 0 <= arg["index"] < C.HVM_NR_PARAMS:
        return C.EINVAL
    dom = _target(hv, caller, arg["domid"])
    if isinstance(dom, int):
        return dom
    if dom.kind is not DomainKind.HVM:
        return C.EINVAL
    if cmd == C.HVMOP_set_param:
        if "value" not in arg:
            return C.EFAULT
        dom.hvm_params[int(arg["index"])] = int(arg["value"])
    else:
        arg["value"] = dom.hvm_params.get(int(arg["index"]), 0)
    return 0


HVM_OP_ENTRY = HypercallEntry("hvm_op", C.HYPERCALL_NUMBERS["hvm_op"], do_hvm_op)
