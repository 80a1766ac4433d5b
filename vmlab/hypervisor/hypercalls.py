"""The hypercall table: one entry per hypercall, with its privilege rule.

Every guest request enters through `Hypervisor.hypercall`, which looks the call up
here, refuses privileged calls from unprivileged domains with -EPERM, and returns
the handler's result: >= 0 on success, a negative errno on failure. A handler never
lets an exception escape into the caller: a misbehaving guest gets Xen's answer.

Handlers take (hv, caller_domain, *args). Results that Xen copies back into a
guest buffer are written into an `out` dict the caller passes.
Later subsystems (paging, grants, event channels) add rows with `register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from vmlab.hardware.memory import all_distinct
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainConfig, DomainState

if TYPE_CHECKING:
    from vmlab.hypervisor.domain import Domain
    from vmlab.hypervisor.hypervisor import Hypervisor

Handler = Callable[..., int]


@dataclass(frozen=True, slots=True)
class HypercallEntry:
    name: str
    number: int
    handler: Handler
    privileged: bool = False   # only a privileged domain (dom0) may make this call at all


def _target(hv: "Hypervisor", caller: "Domain", domid: int) -> "Domain | int":
    """Resolve DOMID_SELF / a domid; foreign targets need privilege (Xen's IS_PRIV_FOR)."""
    if domid == C.DOMID_SELF or domid == caller.domid:
        return caller
    if not caller.privileged:
        return C.EPERM
    dom = hv.domains.get(domid)
    return dom if dom is not None else C.ESRCH


# --- domctl (36): privileged domain control --------------------------------

def do_domctl(hv: "Hypervisor", caller: "Domain", cmd: int, domid: int = C.DOMID_INVALID,
              arg=None, out: dict | None = None) -> int:
    out = out if out is not None else {}
    if cmd == C.XEN_DOMCTL["createdomain"]:
        if not isinstance(arg, DomainConfig):
            return C.EINVAL
        return hv._create_domain(arg, out)
    dom = hv.domains.get(domid)
    if dom is None:
        return C.ESRCH
    if cmd == C.XEN_DOMCTL["destroydomain"]:
        if dom.privileged:
            return C.EINVAL
        return hv._destroy_domain(dom)
    if cmd == C.XEN_DOMCTL["pausedomain"]:
        if dom is caller:  # Xen: a domain cannot pause itself through domctl
            return C.EINVAL
        if not dom.is_live:
            return C.EINVAL
        hv._set_state(dom, DomainState.PAUSED)
        return 0
    if cmd == C.XEN_DOMCTL["unpausedomain"]:
        if dom.state is not DomainState.PAUSED:
            return C.EINVAL
        hv._set_state(dom, hv._live_state(dom))
        return 0
    if cmd == C.XEN_DOMCTL["resumedomain"]:
        # Undo a suspend (xc_domain_resume after a failed save): only a suspended guest.
        if dom.state is not DomainState.SHUTDOWN or dom.shutdown_reason != C.SHUTDOWN_suspend:
            return C.EINVAL
        dom.shutdown_reason = None
        hv._set_state(dom, hv._live_state(dom))
        return 0
    if cmd == C.XEN_DOMCTL["getdomaininfo"]:
        out["info"] = hv.domain_info(dom)
        return 0
    if cmd == C.XEN_DOMCTL["max_mem"]:
        try:
            new_max = int(arg) // 4  # max_memkb -> pages
        except (TypeError, ValueError):
            return C.EINVAL
        if new_max < dom.tot_pages or new_max <= 0:  # Xen 3.x: no max below the current allocation
            return C.EINVAL
        dom.max_pages = new_max
        if new_max > dom.p2m.size:  # room for the guest to grow into
            dom.p2m = np.concatenate([dom.p2m, np.full(new_max - dom.p2m.size, C.INVALID_MFN, np.int64)])
        return 0
    if cmd == C.XEN_DOMCTL["max_vcpus"]:
        # Xen: "We cannot reduce maximum VCPUs". The builder sets it once; the vCPUs
        # come up with the guest. Taking vCPUs off-line later is the guest's job
        # (xenstore cpu/N/availability -> VCPUOP_down), see do_vcpu_op.
        if not isinstance(arg, int) or not 1 <= arg <= min(dom.config.vcpus, C.MAX_VIRT_CPUS):
            return C.EINVAL
        if dom.tot_pages and arg < dom.vcpus_online:
            return C.EINVAL
        dom.vcpus_online = arg
        return 0
    return C.ENOSYS


# --- memory_op (12): reservations and the balloon ---------------------------

def do_memory_op(hv: "Hypervisor", caller: "Domain", cmd: int, domid: int = C.DOMID_SELF,
                 nr_extents: int = 0, extents=None, out: dict | None = None) -> int:
    """Returns the number of extents (4 KiB pages here) completed, as Xen does."""
    dom = _target(hv, caller, domid)
    if isinstance(dom, int):
        return dom
    if cmd == C.XENMEM_current_reservation:
        return dom.tot_pages
    if cmd == C.XENMEM_maximum_reservation:
        return dom.max_pages
    if cmd == C.XENMEM_increase_reservation:
        # memory.h: extent_start is OUT here, the mfns Xen allocated (PV guests of old
        # mapped them themselves); the guest does not say where they go in its physmap.
        if not isinstance(nr_extents, int) or nr_extents < 0:
            return C.EINVAL
        room = min(dom.max_pages - dom.tot_pages, hv.memory.free_frames)
        done = int(max(0, min(room, nr_extents)))
        holes = np.flatnonzero(dom.p2m == C.INVALID_MFN)[:done]
        done = holes.size
        mfns = hv.memory.allocate(dom.domid, done, what=f"domain {dom.name}") if done else np.empty(0, np.int64)
        dom.p2m[holes] = mfns  # kept in the p2m so the frames stay accounted to the guest
        if out is not None:
            out["extent_start"] = mfns.tolist()
        return done
    if cmd == C.XENMEM_populate_physmap:
        # memory.h: extent_start is IN, the guest pfns (GPFNs) to back with new frames.
        want = np.asarray(extents if extents is not None else [], dtype=np.int64)
        if want.size != nr_extents or nr_extents < 0:
            return C.EINVAL
        if want.size and (want.min() < 0 or want.max() >= dom.p2m.size):
            return C.EINVAL
        if not all_distinct(want, dom.p2m.size) or np.any(dom.p2m[want] != C.INVALID_MFN):
            return C.EINVAL  # populating a pfn twice
        room = min(dom.max_pages - dom.tot_pages, hv.memory.free_frames)
        done = int(max(0, min(room, want.size)))
        if done:
            mfns = hv.memory.allocate(dom.domid, done, what=f"domain {dom.name}")
            dom.p2m[want[:done]] = mfns
        return done
    if cmd == C.XENMEM_decrease_reservation:
        give = np.asarray(extents if extents is not None else [], dtype=np.int64)
        if give.size != nr_extents or nr_extents < 0:
            return C.EINVAL
        if give.size and (give.min() < 0 or give.max() >= dom.p2m.size):
            return C.EINVAL
        if not all_distinct(give, dom.p2m.size):
            return C.EINVAL
        populated = dom.p2m[give] != C.INVALID_MFN
        done = int(np.argmin(populated)) if not populated.all() else give.size  # stop at the first hole
        if done:
            hv.memory.release(dom.p2m[give[:done]], owner=dom.domid)
            dom.p2m[give[:done]] = C.INVALID_MFN
        return done
    return C.ENOSYS


# --- sched_op (29) -----------------------------------------------------------

SHUTDOWN_REASONS = (C.SHUTDOWN_poweroff, C.SHUTDOWN_reboot, C.SHUTDOWN_suspend, C.SHUTDOWN_crash, C.SHUTDOWN_watchdog)

def do_sched_op(hv: "Hypervisor", caller: "Domain", cmd: int, arg=None) -> int:
    if cmd == C.SCHEDOP_yield:
        return 0
    if cmd == C.SCHEDOP_block:
        if caller.state is DomainState.RUNNING:
            hv._set_state(caller, DomainState.BLOCKED)
        return 0
    if cmd == C.SCHEDOP_shutdown:
        if arg not in SHUTDOWN_REASONS:
            return C.EINVAL
        return hv._guest_shutdown(caller, arg)
    if cmd == C.SCHEDOP_remote_shutdown:
        if not caller.privileged:
            return C.EPERM
        if not isinstance(arg, dict) or "domid" not in arg or "reason" not in arg:
            return C.EINVAL
        dom = hv.domains.get(arg["domid"])
        if dom is None:
            return C.ESRCH
        if dom.state not in (DomainState.RUNNING, DomainState.BLOCKED, DomainState.PAUSED) \
                or arg["reason"] not in SHUTDOWN_REASONS:
            return C.EINVAL  # Xen's domain_shutdown also takes a paused domain
        return hv._guest_shutdown(dom, arg["reason"])
    return C.ENOSYS


# --- vcpu_op (24): a guest brings its own vCPUs up and down --------------------

def do_vcpu_op(hv: "Hypervisor", caller: "Domain", cmd: int, vcpuid: int = 0, arg=None) -> int:
    """VCPUOP_up / VCPUOP_down / VCPUOP_is_up on the caller's own vCPUs.

    The model keeps vCPUs 0..n-1 on-line (a count, not a bitmap), so the guest's
    hotplug handler brings them up in increasing and down in decreasing order;
    vCPU 0 never goes off-line (Linux keeps the boot CPU).
    """
    if not isinstance(vcpuid, int) or not 0 <= vcpuid < caller.config.vcpus:
        return C.ENOENT
    n = caller.vcpus_online
    if cmd == C.VCPUOP_is_up:
        return int(vcpuid < n)
    if cmd == C.VCPUOP_up:
        if vcpuid < n:
            return 0
        if vcpuid != n:
            return C.EINVAL
        caller.vcpus_online = n + 1
        return 0
    if cmd == C.VCPUOP_down:
        if vcpuid >= n:
            return 0
        if vcpuid == 0 or vcpuid != n - 1:
            return C.EINVAL
        caller.vcpus_online = n - 1
        return 0
    return C.ENOSYS


# --- xen_version (17), console_io (18) ----------------------------------------

def do_xen_version(hv: "Hypervisor", caller: "Domain", cmd: int = C.XENVER_version, arg=None) -> int:
    if cmd == C.XENVER_version:
        major, minor = C.XEN_VERSION
        return (major << 16) | minor
    return C.ENOSYS


def do_console_io(hv: "Hypervisor", caller: "Domain", cmd: int, text: str = "") -> int:
    # Xen's own console (the serial line) is dom0's; a release build refuses domUs.
    if not caller.privileged:
        return C.EPERM
    if cmd == 0:  # CONSOLEIO_write
        hv.xen_console.append(f"(XEN) {text}")
        return 0
    return C.ENOSYS


def _privileged_only(hv, caller, *args, **kwargs) -> int:
    # Calls vmlab models only as a privilege boundary (sysctl, dom0_op/platform_op).
    return C.ENOSYS


BASE_TABLE: dict[str, HypercallEntry] = {
    e.name: e for e in (
        HypercallEntry("domctl", C.HYPERCALL_NUMBERS["domctl"], do_domctl, privileged=True),
        HypercallEntry("sysctl", C.HYPERCALL_NUMBERS["sysctl"], _privileged_only, privileged=True),
        HypercallEntry("dom0_op", C.HYPERCALL_NUMBERS["dom0_op"], _privileged_only, privileged=True),
        HypercallEntry("memory_op", C.HYPERCALL_NUMBERS["memory_op"], do_memory_op),
        HypercallEntry("sched_op", C.HYPERCALL_NUMBERS["sched_op"], do_sched_op),
        HypercallEntry("vcpu_op", C.HYPERCALL_NUMBERS["vcpu_op"], do_vcpu_op),
        HypercallEntry("xen_version", C.HYPERCALL_NUMBERS["xen_version"], do_xen_version),
        HypercallEntry("console_io", C.HYPERCALL_NUMBERS["console_io"], do_console_io),
    )
}
