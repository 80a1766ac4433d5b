"""The hypercall table: one entry per hypercall, with its privilege rule.

Every guest request enters through `Hypervisor.hypercall`, which looks the call up
here, refuses privileged calls from unprivileged domains with -EPERM, and returns
the handler's result: >= 0 on success, a negative errno on failure. Handlers check
their arguments and answer a malformed request with Xen's errno (-EINVAL, -ESRCH,
...); a Python exception out of a handler is a bug in the model and is not hidden.

Handlers take (hv, caller_domain, *args). Results that Xen copies back into a
guest buffer are written into an `out` dict the caller passes. Handlers use only
the hypervisor's public surface (`create_domain`, `destroy_domain`, `set_state`,
`live_state`, `shutdown_domain`, `domain_info`, `domains`, `memory`).

Sub-operations are dispatched by tables (`DOMCTL_OPS`, `MEMORY_OPS`, `SCHED_OPS`,
`VCPU_OPS`) as Xen's `do_domctl` switch does: an unknown sub-op gets -ENOSYS.
Later subsystems (paging, grants, event channels) add rows with `Hypervisor.register`;
a handler may be any callable, e.g. a closure holding its subsystem's state.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from vmlab.hardware.memory import all_distinct
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainConfig, DomainKind, DomainState
from vmlab.hypervisor.release import held_count, remove_pages

# hypervisor.py imports this table, so this module names the Hypervisor only in prose:
# `Hypervisor` below is any object with the public surface listed in the docstring.
Hypervisor = Any
Handler = Callable[..., int]


def _arity(handler: Handler) -> tuple[int, float, frozenset[str] | None]:
    """(fewest, most positional args after (hv, caller), keyword names or None for **kwargs)."""
    params = list(inspect.signature(handler).parameters.values())[2:]
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    low = sum(1 for p in pos if p.default is p.empty)
    high = float("inf") if any(p.kind is p.VAR_POSITIONAL for p in params) else len(pos)
    kws = None if any(p.kind is p.VAR_KEYWORD for p in params) else frozenset(
        p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return low, high, kws


@dataclass(frozen=True, slots=True)
class HypercallEntry:
    name: str
    number: int
    handler: Handler
    privileged: bool = False   # only a privileged domain (dom0) may make this call at all
    arity: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arity", _arity(self.handler))

    def accepts(self, nargs: int, kwargs: dict) -> bool:
        """Does the call carry as many arguments as the hypercall takes? (else -EINVAL)"""
        low, high, kws = self.arity
        return low <= nargs <= high and (kws is None or kws.issuperset(kwargs))


def _number(x) -> bool:
    """A guest register holds a number: anything else is a malformed call (-EINVAL / -ENOSYS)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _row(table: dict, cmd) -> Handler | None:
    """The sub-operation `cmd` in a dispatch table (None: Xen's switch falls to -ENOSYS)."""
    return table.get(int(cmd)) if _number(cmd) else None


def _domain(hv: Hypervisor, domid) -> Domain | None:
    return hv.domains.get(int(domid)) if _number(domid) else None


def guest_struct(arg, nested: tuple[str, ...] = ()) -> bool:
    """Could Xen copy this op struct from guest memory? (copy_from_guest of a C struct)

    A struct is a dict whose fields are integers; the fields named in `nested` are
    structs themselves (a grant copy's source/dest). Anything else has no C layout:
    the handler answers -EFAULT, as Xen does for a buffer it cannot read.
    """
    if not isinstance(arg, dict):
        return False
    return all(_number(v) or (k in nested and guest_struct(v)) for k, v in arg.items())


def _target(hv: Hypervisor, caller: Domain, domid: int) -> Domain | int:
    """Resolve DOMID_SELF / a domid; foreign targets need privilege (Xen's IS_PRIV_FOR)."""
    if not _number(domid):
        return C.EINVAL
    if domid == C.DOMID_SELF or domid == caller.domid:
        return caller
    if not caller.privileged:
        return C.EPERM
    dom = _domain(hv, domid)
    return dom if dom is not None else C.ESRCH


# --- domctl (36): privileged domain control --------------------------------
# Each sub-op takes (hv, caller, dom, arg, out), dom already looked up (-ESRCH if none).

def _domctl_destroy(hv, caller, dom, arg, out) -> int:
    return C.EINVAL if dom.privileged else hv.destroy_domain(dom)


def _domctl_pause(hv, caller, dom, arg, out) -> int:
    # Xen 3.1 domctl.c: -EINVAL only for d == current->domain; pausing a paused domain returns 0
    if dom is caller:
        return C.EINVAL
    if dom.state is DomainState.PAUSED:
        return 0
    if not dom.is_live:   # vmlab keeps one state: a shut-down domain cannot also be marked paused
        return C.EINVAL
    hv.set_state(dom, DomainState.PAUSED)
    return 0


def _domctl_unpause(hv, caller, dom, arg, out) -> int:
    # Xen 3.1: domain_unpause_by_systemcontroller clears the flag if set; always 0
    if dom.state is DomainState.PAUSED:
        hv.set_state(dom, hv.live_state(dom))
    return 0


def _domctl_resume(hv, caller, dom, arg, out) -> int:
    # Undo a suspend (xc_domain_resume after a failed save): only a suspended guest.
    if dom.state is not DomainState.SHUTDOWN or dom.shutdown_reason != C.SHUTDOWN_suspend:
        return C.EINVAL
    dom.shutdown_reason = None
    hv.set_state(dom, hv.live_state(dom))
    return 0


def _domctl_getdomaininfo(hv, caller, dom, arg, out) -> int:
    out["info"] = hv.domain_info(dom)
    return 0


def _domctl_max_mem(hv, caller, dom, arg, out) -> int:
    try:
        new_max = int(arg) // 4  # max_memkb -> pages
    except (TypeError, ValueError, OverflowError):
        return C.EINVAL  # not a number of KiB
    if new_max < dom.tot_pages or new_max <= 0:  # Xen 3.x: no max below the current allocation
        return C.EINVAL
    dom.max_pages = new_max
    if new_max > dom.p2m.size:  # room for the guest to grow into
        dom.p2m = np.concatenate([dom.p2m, np.full(new_max - dom.p2m.size, C.INVALID_MFN, np.int64)])
    return 0


def _domctl_max_vcpus(hv, caller, dom, arg, out) -> int:
    # Xen: "We cannot reduce maximum VCPUs". The builder sets it once; the vCPUs
    # come up with the guest. Taking vCPUs off-line later is the guest's job
    # (xenstore cpu/N/availability -> VCPUOP_down), see do_vcpu_op.
    if not _number(arg) or not 1 <= arg <= min(dom.config.vcpus, C.MAX_VIRT_CPUS):
        return C.EINVAL
    if dom.tot_pages and arg < dom.vcpus_online:
        return C.EINVAL
    dom.vcpus_online = arg
    return 0


DOMCTL_OPS: dict[int, Handler] = {
    C.XEN_DOMCTL["destroydomain"]: _domctl_destroy,
    C.XEN_DOMCTL["pausedomain"]: _domctl_pause,
    C.XEN_DOMCTL["unpausedomain"]: _domctl_unpause,
    C.XEN_DOMCTL["resumedomain"]: _domctl_resume,
    C.XEN_DOMCTL["getdomaininfo"]: _domctl_getdomaininfo,
    C.XEN_DOMCTL["max_mem"]: _domctl_max_mem,
    C.XEN_DOMCTL["max_vcpus"]: _domctl_max_vcpus,
}


def do_domctl(hv: Hypervisor, caller: Domain, cmd: int, domid: int = C.DOMID_INVALID,
              arg=None, out: dict | None = None) -> int:
    out = out if out is not None else {}
    if _number(cmd) and cmd == C.XEN_DOMCTL["createdomain"]:  # the one sub-op with no domain yet
        if not isinstance(arg, DomainConfig):
            return C.EINVAL
        if not isinstance(out, dict):
            return C.EFAULT
        rc = hv.create_domain(arg)
        if rc >= 0:
            out["domid"] = rc
        return min(rc, 0)
    if not isinstance(out, dict):
        return C.EFAULT   # nowhere to copy the result back to
    op, dom = _row(DOMCTL_OPS, cmd), _domain(hv, domid)
    if dom is None:
        return C.ESRCH
    return C.ENOSYS if op is None else op(hv, caller, dom, arg, out)


# --- memory_op (12): reservations and the balloon ---------------------------
# Each sub-op takes (hv, dom, nr_extents, extents, out) and returns extents done.

def _pfn_list(dom: Domain, nr_extents, extents) -> np.ndarray | None:
    """The guest's extent list as pfns, or None if Xen would refuse it (-EINVAL)."""
    if not _number(nr_extents) or nr_extents < 0:
        return None
    try:
        pfns = np.asarray(extents if extents is not None else [], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        return None  # not a list of frame numbers: Xen's copy_from_guest would fault
    if pfns.size != nr_extents or (pfns.size and (pfns.min() < 0 or pfns.max() >= dom.p2m.size)):
        return None
    return pfns if all_distinct(pfns, dom.p2m.size) else None


def _tot_pages(hv, dom: Domain) -> int:
    """Xen's d->tot_pages: the physmap plus frames given back but still referenced (release.py)."""
    return dom.tot_pages + held_count(hv, dom.domid)


def _mem_increase(hv, dom, nr_extents, extents, out) -> int:
    # memory.h: extent_start is OUT here, the mfns Xen allocated (PV guests of old
    # mapped them themselves); the guest does not say where they go in its physmap.
    if not _number(nr_extents) or nr_extents < 0:
        return C.EINVAL
    room = min(dom.max_pages - _tot_pages(hv, dom), hv.memory.free_frames)
    done = int(max(0, min(room, nr_extents)))
    holes = np.flatnonzero(dom.p2m == C.INVALID_MFN)[:done]
    done = holes.size
    mfns = hv.memory.allocate(dom.domid, done, what=f"domain {dom.name}") if done else np.empty(0, np.int64)
    dom.p2m[holes] = mfns  # kept in the p2m so the frames stay accounted to the guest
    if out is not None:
        out["extent_start"] = mfns.tolist()
    return done


def _mem_populate(hv, dom, nr_extents, extents, out) -> int:
    # memory.h: extent_start is IN, the guest pfns (GPFNs) to back with new frames.
    want = _pfn_list(dom, nr_extents, extents)
    if want is None or np.any(dom.p2m[want] != C.INVALID_MFN):
        return C.EINVAL  # malformed, or populating a pfn twice
    room = min(dom.max_pages - _tot_pages(hv, dom), hv.memory.free_frames)
    done = int(max(0, min(room, want.size)))
    if done:
        mfns = hv.memory.allocate(dom.domid, done, what=f"domain {dom.name}")
        dom.p2m[want[:done]] = mfns   # the guest's own p2m (guest data on the domain record)
        if out is not None and dom.kind is DomainKind.PV:   # Xen 3.1: "Inform the domain of the new
            out["extent_start"] = mfns.tolist()             # page's machine address"
    return done


def _mem_decrease(hv, dom, nr_extents, extents, out) -> int:
    give = _pfn_list(dom, nr_extents, extents)
    if give is None:
        return C.EINVAL
    populated = dom.p2m[give] != C.INVALID_MFN
    done = int(np.argmin(populated)) if not populated.all() else give.size  # stop at the first hole
    if done:  # guest_remove_page: drop pins and the allocation; referenced frames stay held
        remove_pages(hv, dom, give[:done])
    return done


MEMORY_OPS: dict[int, Handler] = {
    C.XENMEM_current_reservation: lambda hv, dom, n, e, out: _tot_pages(hv, dom),
    C.XENMEM_maximum_reservation: lambda hv, dom, n, e, out: dom.max_pages,
    C.XENMEM_increase_reservation: _mem_increase,
    C.XENMEM_populate_physmap: _mem_populate,
    C.XENMEM_decrease_reservation: _mem_decrease,
}


def do_memory_op(hv: Hypervisor, caller: Domain, cmd: int, domid: int = C.DOMID_SELF,
                 nr_extents: int = 0, extents=None, out: dict | None = None) -> int:
    """Returns the number of extents (4 KiB pages here) completed, as Xen does."""
    dom = _target(hv, caller, domid)
    if isinstance(dom, int):
        return dom
    if out is not None and not isinstance(out, dict):
        return C.EFAULT
    op = _row(MEMORY_OPS, cmd)
    return C.ENOSYS if op is None else op(hv, dom, nr_extents, extents, out)


# --- sched_op (29) -----------------------------------------------------------

SHUTDOWN_REASONS = (C.SHUTDOWN_poweroff, C.SHUTDOWN_reboot, C.SHUTDOWN_suspend, C.SHUTDOWN_crash, C.SHUTDOWN_watchdog)


def _sched_block(hv, caller, arg) -> int:
    if caller.state is DomainState.RUNNING:
        hv.set_state(caller, DomainState.BLOCKED)
    return 0


def _sched_shutdown(hv, caller, arg) -> int:
    return hv.shutdown_domain(caller, arg) if _number(arg) and arg in SHUTDOWN_REASONS else C.EINVAL


def _sched_remote_shutdown(hv, caller, arg) -> int:
    if not caller.privileged:
        return C.EPERM
    if not isinstance(arg, dict) or "domid" not in arg or "reason" not in arg:
        return C.EINVAL
    dom = _domain(hv, arg["domid"])
    if dom is None:
        return C.ESRCH
    if dom.state not in (DomainState.RUNNING, DomainState.BLOCKED, DomainState.PAUSED) \
            or not _number(arg["reason"]) or arg["reason"] not in SHUTDOWN_REASONS:
        return C.EINVAL  # Xen's domain_shutdown also takes a paused domain
    return hv.shutdown_domain(dom, arg["reason"])


SCHED_OPS: dict[int, Handler] = {
    C.SCHEDOP_yield: lambda hv, caller, arg: 0,
    C.SCHEDOP_block: _sched_block,
    C.SCHEDOP_shutdown: _sched_shutdown,
    C.SCHEDOP_remote_shutdown: _sched_remote_shutdown,
}


def do_sched_op(hv: Hypervisor, caller: Domain, cmd: int, arg=None) -> int:
    op = _row(SCHED_OPS, cmd)
    return C.ENOSYS if op is None else op(hv, caller, arg)


# --- vcpu_op (24): a guest brings its own vCPUs up and down --------------------
# The model keeps vCPUs 0..n-1 on-line (a count, not a bitmap), so the guest's
# hotplug handler brings them up in increasing and down in decreasing order;
# vCPU 0 never goes off-line (Linux keeps the boot CPU).

def _vcpu_up(caller, vcpuid: int, n: int) -> int:
    if vcpuid < n:
        return 0
    if vcpuid != n:
        return C.EINVAL
    caller.vcpus_online = n + 1
    return 0


def _vcpu_down(caller, vcpuid: int, n: int) -> int:
    if vcpuid >= n:
        return 0
    if vcpuid == 0 or vcpuid != n - 1:
        return C.EINVAL
    caller.vcpus_online = n - 1
    return 0


VCPU_OPS: dict[int, Handler] = {
    C.VCPUOP_is_up: lambda caller, vcpuid, n: int(vcpuid < n),
    C.VCPUOP_up: _vcpu_up,
    C.VCPUOP_down: _vcpu_down,
}


def do_vcpu_op(hv: Hypervisor, caller: Domain, cmd: int, vcpuid: int = 0, arg=None) -> int:
    """VCPUOP_up / VCPUOP_down / VCPUOP_is_up on the caller's own vCPUs."""
    if not _number(vcpuid) or not 0 <= vcpuid < caller.config.vcpus:
        return C.ENOENT
    op = _row(VCPU_OPS, cmd)
    return C.ENOSYS if op is None else op(caller, vcpuid, caller.vcpus_online)


# --- xen_version (17), console_io (18) ----------------------------------------

def do_xen_version(hv: Hypervisor, caller: Domain, cmd: int = C.XENVER_version, arg=None) -> int:
    if _number(cmd) and cmd == C.XENVER_version:
        major, minor = C.XEN_VERSION
        return (major << 16) | minor
    return C.ENOSYS


def do_console_io(hv: Hypervisor, caller: Domain, cmd: int, text: str = "") -> int:
    # Xen's own console (the serial line) is dom0's; a release build refuses domUs.
    if not caller.privileged:
        return C.EPERM
    if _number(cmd) and cmd == 0:  # CONSOLEIO_write
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
