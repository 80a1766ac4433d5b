"""Migrating a live Domain between two Hypervisors (Clark et al.'s six stages).

    0 pre-migration   checks: same pool, shared storage, compatible target, memory
    1 reservation     a paused domain on the target, its physmap populated
    2 iterative pre-copy   \\  vmlab.migration.engine (the policy decides)
    3 stop-and-copy        /
    4 commitment      the target holds a verified copy; only now is the source destroyed
    5 activation      the target domain is unpaused with the guest's devices, MAC kept

A failure or cancel before stage 4 releases the reservation and leaves the guest
running on the source; a failure during post-copy loses the guest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from vmlab.errors import MigrationError
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainState, VirtualDevice
from vmlab.migration.engine import run_migration
from vmlab.migration.faults import Fault
from vmlab.migration.image import DomainSource, DomainTarget
from vmlab.migration.policies import Policy, StopAndCopy, Xen3Policy
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.workloads import Idle, UniformWrites, Workload

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["MigrationRefused", "MigrationFailed", "check_migration", "migrate_domain", "default_workload",
           "RELOCATION_PORT", "RELOCATION_SSL_PORT"]

RELOCATION_PORT = 8002      # xend-relocation-port (xend-config.sxp)
RELOCATION_SSL_PORT = 8003  # xend-relocation-ssl-port
# ILLUSTRATIVE: a busy vCPU stores to this many distinct-ish pages per second, within
# a writable working set of 1/8 of its memory. Used only when no workload is given.
DEFAULT_STORES_PER_VCPU_S = 5_000
DEFAULT_WWS_FRACTION = 1 / 8


class MigrationRefused(MigrationError):
    """Stage 0 said no (storage, pool, memory, state); nothing was changed."""


class MigrationFailed(MigrationError):
    """The migration started but failed or was cancelled; `.report` says where the guest is."""

    def __init__(self, message: str, report: MigrationReport) -> None:
        super().__init__(message)
        self.report = report


def default_workload(dom: Domain) -> Workload:
    """What a domain dirties when no workload is given: proportional to its load (ILLUSTRATIVE)."""
    rate = dom.load * dom.vcpus_online * DEFAULT_STORES_PER_VCPU_S
    populated = int(np.count_nonzero(dom.p2m != C.INVALID_MFN))
    if rate <= 0 or populated == 0:
        return Idle()
    return UniformWrites(rate_pages_s=rate, wws_pages=max(1, int(populated * DEFAULT_WWS_FRACTION)))


def check_migration(src: "Hypervisor", dst: "Hypervisor", dom: Domain, *, live: bool = True,
                    port: int = RELOCATION_PORT) -> None:
    """Stage 0: raise MigrationRefused naming the first rule the move would break."""
    name = dom.name
    if src is dst:
        raise MigrationRefused(f"{name} already runs on {src.host.name}; name another server of the pool")
    if dom.privileged:
        raise MigrationRefused(f"{name} is the management domain of {src.host.name}; only guests migrate")
    if port not in (RELOCATION_PORT, RELOCATION_SSL_PORT):
        raise MigrationRefused(f"port {port}: xend on {dst.host.name} listens for relocation on {RELOCATION_PORT} "
                               f"({RELOCATION_SSL_PORT} with SSL); connection refused; use -p {RELOCATION_PORT}")
    if dom.state not in (DomainState.RUNNING, DomainState.BLOCKED, DomainState.PAUSED):
        raise MigrationRefused(f"{name} is {dom.state.value}; only a running, blocked or paused guest can migrate")
    if live and dom.state is DomainState.PAUSED:
        raise MigrationRefused(f"{name} is paused; a live migration needs a running guest: unpause it or drop -l")
    for disk in dom.config.disks:
        here = src.host.storage_for(disk.path)
        if here is None or not here.storage.shared:
            kind = here.storage.value if here else "dom0's own filesystem"
            raise MigrationRefused(
                f"disk {disk.vdev} ({disk.path}) is on {kind} storage of {src.host.name}; only guests on shared "
                "storage (NFS, iSCSI, FC) can migrate; move the image to the pool's shared repository")
        there = dst.host.storage_for(disk.path)
        if there is None or there.storage is not here.storage or there.mount != here.mount:
            raise MigrationRefused(f"disk {disk.vdev} ({disk.path}) is on {here.storage.value} mounted at {here.mount}, "
                                   f"which {dst.host.name} does not mount; both servers must share the repository")
    for vif in dom.config.vifs:
        if vif.bridge not in dst.bridges:
            raise MigrationRefused(f"vif bridge {vif.bridge} does not exist on {dst.host.name}; live migration keeps "
                                   "the MAC and IP, so both servers must be on the same network (bridge/VLAN)")
    if dst.host.pcpus < dom.vcpus_online:  # Oracle VM's pool rule (identical servers), not a Xen limit
        raise MigrationRefused(f"{name} has {dom.vcpus_online} vCPUs but {dst.host.name} has {dst.host.pcpus} CPUs; "
                               "Oracle VM migrates only between compatible (identical) servers of a pool")
    if any(d.name == name for d in dst.domains.values()):
        raise MigrationRefused(f"a domain named {name} already exists on {dst.host.name}; rename or destroy it first")
    need = dom.tot_pages
    if need > dst.memory.free_frames:
        raise MigrationRefused(f"{name} holds {need * 4 // 1024} MiB but {dst.host.name} has "
                               f"{dst.memory.free_frames * 4 // 1024} MiB free; free memory on the target first")


def _reserve(dst: "Hypervisor", dom: Domain) -> int:
    """Stage 1: an empty, paused domain on the target with the same pfns populated."""
    out: dict = {}
    rc = dst.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, dom.config, out)
    if rc < 0:
        raise MigrationRefused(f"the target refused to create {dom.name} (rc {rc}); check `xm list` on {dst.host.name}")
    domid = out["domid"]
    pfns = np.flatnonzero(dom.p2m != C.INVALID_MFN).astype(np.int64)
    ok = (dst.hypercall(0, "domctl", C.XEN_DOMCTL["max_vcpus"], domid, dom.vcpus_online) >= 0
          and dst.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], domid, max(dom.max_pages, dom.p2m.size) * 4) >= 0
          and dst.hypercall(0, "memory_op", C.XENMEM_populate_physmap, domid, pfns.size, pfns) == pfns.size)
    if not ok:
        dst.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], domid)
        raise MigrationRefused(f"could not reserve {pfns.size} pages for {dom.name} on {dst.host.name}; free memory there")
    return domid


def _activate(src: "Hypervisor", dst: "Hypervisor", dom: Domain, new: Domain, live_s: float) -> None:
    """Stages 4-5: commit (destroy the source) and activate the copy with the guest's devices."""
    new.target_pages = dom.target_pages
    new.max_pages = dom.max_pages
    new.cpu_time_s = dom.cpu_time_s
    new.load = dom.load
    new.console = list(dom.console) + [f"(migrated from {src.host.name} to {dst.host.name})"]
    # The guest keeps its MACs (same L2 segment); its disks are on shared storage.
    # dom0 on the source tears the backends down, dom0 on the target builds them.
    from vmlab.toolstack import devices
    macs = devices.vif_macs(dom)
    devices.disconnect(src, dom)
    src.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)
    devices.connect(dst, new, macs=macs)
    dst.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], new.domid)
    dst.trace.record(time_ns=dst.now_ns, domid=new.domid, kind="migrate-in", detail=f"from {src.host.name}",
                     value=int(live_s * 1000))
    src.trace.record(time_ns=src.now_ns, domid=dom.domid, kind="migrate-out", detail=f"to {dst.host.name}",
                     value=int(live_s * 1000))


def migrate_domain(src: "Hypervisor", dst: "Hypervisor", ref: str | int, *, link, policy: Policy | None = None,
                   live: bool = True, workload: Workload | None = None, seed: int = 0, fault: Fault | None = None,
                   port: int = RELOCATION_PORT, progress: Callable[[RoundRecord], None] | None = None,
                   max_time_s: float = 600.0) -> MigrationReport:
    """Move domain `ref` (name or domid) from `src` to `dst`; returns the report.

    Raises MigrationRefused (nothing changed) when stage 0 says no, and
    MigrationFailed (with `.report`) when the migration fails or is cancelled:
    before commitment the guest is back running on `src` and `dst` holds no
    leftovers; during post-copy the guest is lost.
    """
    dom = _find(src, ref)
    check_migration(src, dst, dom, live=live, port=port)
    if policy is None:
        policy = Xen3Policy() if live else StopAndCopy()
    if not live and policy.live:
        policy = StopAndCopy()
    workload = workload if workload is not None else default_workload(dom)
    new_domid = _reserve(dst, dom)
    source, target = DomainSource(src, dom.domid), DomainTarget(dst, new_domid)
    if dom.state is DomainState.PAUSED:
        source.paused = True  # a paused guest writes nothing and stays paused on failure
    try:
        report = run_migration(source, target, policy=policy, link=link, workload=workload, seed=seed, fault=fault,
                               progress=progress, max_time_s=max_time_s)
    except BaseException:
        if new_domid in dst.domains:
            dst.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], new_domid)
        source.resume()
        if dom.domid in src.domains and getattr(dom, "dirty_bitmap", None) is not None:
            source.disable_log()
        raise
    if report.status != "completed":
        if new_domid in dst.domains:
            dst.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], new_domid)
        if report.guest_lost and dom.domid in src.domains:
            dom.devices.clear()
            src.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)
        raise MigrationFailed(f"migration of {dom.name} to {dst.host.name} {report.status}: {report.error}", report)
    _activate(src, dst, dom, dst.domains[new_domid], report.total_time_ms / 1000)
    return report


def _find(hv: "Hypervisor", ref: str | int) -> Domain:
    from vmlab.errors import DomainNotFound
    for dom in hv.domains.values():
        if dom.name == ref or (str(ref).isdigit() and dom.domid == int(ref)):
            return dom
    raise DomainNotFound(f"domain {ref!r} does not exist on {hv.host.name}; check `xm list`")
