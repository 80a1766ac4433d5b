"""`xm migrate [-l] [-p port] <domain> <host>`: move a guest to another server of the pool.

xend's side of a migration (Clark et al.'s six stages); the pages themselves are
the engine's (vmlab.migration):

    0 pre-migration   checks: same pool, shared storage, compatible target, memory
    1 reservation     a paused domain on the target, its physmap populated
    2 iterative pre-copy   \\  vmlab.migration.run_migration (the policy decides)
    3 stop-and-copy        /
    4 commitment      the target holds a verified copy; only now is the source destroyed
    5 activation      the target domain is unpaused with the guest's devices, MAC kept

A failure or cancel before stage 4 releases the reservation and leaves the guest
running on the source; a failure during post-copy loses the guest. The pool's
link carries the pages; the policy defaults to Xen 3's pre-copy (xc_domain_save)
for -l and stop-and-copy without it, as xend did.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import MigrationError, MigrationFailed, MigrationRefused
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainState
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.migration.engine import run_migration
from vmlab.migration.faults import Fault
from vmlab.migration.image import DomainSource, DomainTarget
from vmlab.migration.policies import Policy, StopAndCopy, Xen3Policy, policy_by_name
from vmlab.migration.report import MigrationReport
from vmlab.migration.dirtying import Idle, UniformWrites, Workload
from vmlab.toolstack import devices

__all__ = ["migrate", "check_migration", "default_workload", "default_policy", "RELOCATION_PORT",
           "RELOCATION_SSL_PORT"]

RELOCATION_PORT = 8002      # xend-relocation-port (xend-config.sxp)
RELOCATION_SSL_PORT = 8003  # xend-relocation-ssl-port
# ILLUSTRATIVE: a busy vCPU stores to this many distinct-ish pages per second, within
# a writable working set of 1/8 of its memory. Used only when no workload is given.
DEFAULT_STORES_PER_VCPU_S = 5_000
DEFAULT_WWS_FRACTION = 1 / 8


def default_workload(dom: Domain) -> Workload:
    """What a domain dirties when no workload is given: proportional to its load (ILLUSTRATIVE)."""
    rate = dom.load * dom.vcpus_online * DEFAULT_STORES_PER_VCPU_S
    populated = int(np.count_nonzero(dom.p2m != C.INVALID_MFN))
    if rate <= 0 or populated == 0:
        return Idle()
    return UniformWrites(rate_pages_s=rate, wws_pages=max(1, int(populated * DEFAULT_WWS_FRACTION)))


def default_policy(policy: Policy | str | None, *, live: bool) -> Policy:
    """xend's choice: Xen 3 pre-copy with -l, stop-and-copy without (a live policy is not used without -l)."""
    if isinstance(policy, str):
        policy = policy_by_name(policy)
    if policy is None:
        return Xen3Policy() if live else StopAndCopy()
    return StopAndCopy() if not live and policy.live else policy


def _check_storage(src: Hypervisor, dst: Hypervisor, dom: Domain) -> None:
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


def check_migration(src: Hypervisor, dst: Hypervisor, dom: Domain, *, live: bool = True,
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
    _check_storage(src, dst, dom)
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


def _reserve(dst: Hypervisor, dom: Domain) -> int:
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


def _release(src: Hypervisor, dst: Hypervisor, dom: Domain, new_domid: int, report: MigrationReport) -> None:
    """A failed or cancelled run: drop the reservation; a guest lost in post-copy goes from the source too."""
    if new_domid in dst.domains:
        dst.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], new_domid)
    if report.guest_lost and dom.domid in src.domains:
        dom.devices.clear()
        src.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)


def _activate(src: Hypervisor, dst: Hypervisor, dom: Domain, new: Domain, report: MigrationReport) -> None:
    """Stages 4-5: commit (destroy the source) and activate the copy with the guest's devices.

    After commitment the guest exists only on the target. If its devices cannot be set up
    there, xend's restore (XendCheckpoint.restore: `except: dominfo.destroy()`) would destroy
    it and the guest would be lost; vmlab keeps it paused on the target, without devices, so
    `xm list` shows it and the user can attach devices and unpause it, or destroy it.
    """
    live_s = report.total_time_ms / 1000
    new.target_pages = dom.target_pages
    new.max_pages = dom.max_pages
    new.cpu_time_s = dom.cpu_time_s
    new.load = dom.load
    new.hvm_params = dict(dom.hvm_params)   # in the HVM context xc_domain_save sends (PV drivers: CALLBACK_IRQ)
    new.console = list(dom.console) + [f"(migrated from {src.host.name} to {dst.host.name})"]
    # The guest keeps its MACs (same L2 segment); its disks are on shared storage.
    # dom0 on the source tears the backends down, dom0 on the target builds them.
    macs = devices.vif_macs(dom)
    devices.disconnect(src, dom)
    src.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)
    try:
        devices.connect(dst, new, macs=macs)
    except Exception as e:  # noqa: BLE001 - any failure here strands a committed guest
        new.console.append(f"(device setup failed on {dst.host.name} after migration: {e})")
        dst.trace.record(time_ns=dst.now_ns, domid=new.domid, kind="migrate-in-failed", detail=type(e).__name__)
        raise MigrationFailed(f"migration of {dom.name} to {dst.host.name} failed after commitment: device setup "
                              f"({type(e).__name__}: {e}); {dom.name} is paused on {dst.host.name} (id {new.domid}): "
                              f"attach its devices and `xm unpause {dom.name}`, or `xm destroy {dom.name}`", report) from None
    dst.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], new.domid)
    dst.trace.record(time_ns=dst.now_ns, domid=new.domid, kind="migrate-in", detail=f"from {src.host.name}",
                     value=int(live_s * 1000))
    src.trace.record(time_ns=src.now_ns, domid=dom.domid, kind="migrate-out", detail=f"to {dst.host.name}",
                     value=int(live_s * 1000))


def migrate(pool, domain: str | int, target_host: str, *, live: bool = True, port: int = RELOCATION_PORT,
            policy: Policy | str | None = None, workload: Workload | None = None, seed: int = 0,
            fault: Fault | None = None, max_time_s: float = 600.0) -> MigrationReport:
    """Migrate `domain` (a name anywhere in the pool) to server `target_host`; returns the report.

    Raises MigrationRefused (nothing changed) when stage 0 says no, MigrationFailed
    (with `.report`) when the migration fails or is cancelled: before commitment the
    guest is back running on the source and the target holds no leftovers; during
    post-copy the guest is lost. ConfigError for an unknown server. Each round goes to
    `pool.round_observer` while it runs.
    """
    if not isinstance(domain, str) or domain.isdigit():
        raise MigrationError(f"xm migrate {domain}: domids are per server in a pool; name the guest instead")
    src, dom = pool.find(domain)
    dst = pool.server(target_host)
    return migrate_domain(src, dst, dom, link=pool.link, live=live, port=port, policy=policy, workload=workload,
                          seed=seed, fault=fault, progress=pool.round_observer, max_time_s=max_time_s)


def migrate_domain(src: Hypervisor, dst: Hypervisor, dom: Domain, *, link, live: bool = True,
                   port: int = RELOCATION_PORT, policy: Policy | str | None = None,
                   workload: Workload | None = None, seed: int = 0, fault: Fault | None = None,
                   progress=None, max_time_s: float = 600.0) -> MigrationReport:
    """Move live domain `dom` from hypervisor `src` to `dst` over `link` (xend's stages around the engine).

    The pool-free form of `migrate`, for callers that hold the two servers (the
    Oracle VM agents); same refusals, failures and guarantees.
    """
    policy = default_policy(policy, live=live)
    check_migration(src, dst, dom, live=live, port=port)
    workload = workload if workload is not None else default_workload(dom)
    new_domid = _reserve(dst, dom)
    source, target = DomainSource(src, dom.domid), DomainTarget(dst, new_domid)
    source.paused = dom.state is DomainState.PAUSED  # a paused guest writes nothing and stays paused on failure
    try:
        report = run_migration(source, target, policy=policy, link=link, workload=workload, seed=seed,
                               fault=fault, progress=progress, max_time_s=max_time_s)
    except BaseException:
        if new_domid in dst.domains:
            dst.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], new_domid)
        source.resume()
        if dom.domid in src.domains and getattr(dom, "dirty_bitmap", None) is not None:
            source.disable_log()
        raise
    if report.status != "completed":
        _release(src, dst, dom, new_domid, report)
        raise MigrationFailed(f"migration of {dom.name} to {dst.host.name} {report.status}: {report.error}", report)
    target.load_pagetables(source.pagetables)   # uncanonicalised with the new mfns (xc_domain_restore)
    _activate(src, dst, dom, dst.domains[new_domid], report)
    return report
