"""The xm toolstack: the verbs an administrator types in dom0.

Every verb checks its input first (a clear ConfigError / CapacityError /
DomainStateError that changes nothing), then does its work only through
privileged hypercalls from dom0 (domctl, memory_op, sched_op), as xend does
through libxc. A hypercall that still fails raises HypercallError.

After each verb the toolstack reaps stopped guests the way xend's
@releaseDomain watch does: on_poweroff / on_reboot / on_crash decide whether a
shut-down or crashed guest is destroyed, restarted (a new domid) or preserved.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import CapacityError, ConfigError, DomainNotFound, DomainStateError, HypercallError
from vmlab.guest import linux
from vmlab.hardware.host import parse_size_mib
from vmlab.hardware.memory import frames_from_mib, mib_from_frames
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import Domain, DomainConfig, DomainKind, DomainState
from vmlab.hypervisor.hypervisor import DomainInfo, Hypervisor
from vmlab.toolstack.config import parse_xm_config

__all__ = ["Toolstack", "format_list", "LIST_HEADER"]

# Xen 3.x tools/python/xen/xm/main.py, xm_brief_list.
LIST_HEADER = "%-40s %5s %5s %5s %10s %9s" % ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")
LIST_ROW = "%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s %(cpu_time)8.1f"


def format_list(infos: list[DomainInfo]) -> str:
    """`xm list` output, byte for byte as Xen 3's xm prints it."""
    rows = [LIST_HEADER]
    for i in infos:
        rows.append(LIST_ROW % {"name": i.name, "domid": str(i.domid), "mem": i.memory_mib, "vcpus": i.vcpus,
                                "state": i.flags, "cpu_time": i.cpu_time_s})
    return "\n".join(rows)


def _devices():
    """toolstack.devices, imported on first use: read-only verbs never load the I/O system."""
    from vmlab.toolstack import devices
    return devices


class Toolstack:
    """xm for one host: create, destroy, shutdown, reboot, pause, unpause, list, mem-set, ..."""

    def __init__(self, hv: Hypervisor) -> None:
        self.hv = hv

    # --- plumbing ---------------------------------------------------------------
    def _call(self, name: str, *args, why: str = "") -> int:
        rc = self.hv.hypercall(0, name, *args)
        if rc < 0:
            raise HypercallError(name, rc, why)
        return rc

    def lookup(self, ref: str | int) -> Domain:
        """A domain by name or domid (as xm accepts either)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            dom = self.hv.domains.get(int(ref))
            if dom is not None:
                return dom
        else:
            for dom in self.hv.domains.values():
                if dom.name == ref:
                    return dom
        names = ", ".join(d.name for d in self.hv.domains.values())
        raise DomainNotFound(f"domain {ref!r} does not exist on {self.hv.host.name} (domains: {names}); check `xm list`")

    def _domU(self, ref: str | int, verb: str) -> Domain:
        dom = self.lookup(ref)
        if dom.privileged:
            raise DomainStateError(f"xm {verb} {ref}: domain 0 is the management domain and cannot be {verb}d; "
                                   "name a guest instead")
        return dom

    # --- create -----------------------------------------------------------------
    def create(self, config: DomainConfig | str, *, paused: bool = False) -> Domain:
        """Build and start a guest from a DomainConfig or an xm config file path."""
        if isinstance(config, str):
            config = self.load_config(config)
        self._check_create(config)
        out: dict = {}
        self._call("domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, config, out)
        domid = out["domid"]
        try:
            self._build(domid, config, pfns=np.arange(frames_from_mib(config.memory_mib), dtype=np.int64))
            dom = self.hv.domains[domid]
            _devices().connect(self.hv, dom)
            linux.boot_guest(self.hv, domid)
        except Exception:
            self._undo_create(domid)
            raise
        if not paused:
            self._call("domctl", C.XEN_DOMCTL["unpausedomain"], domid)
        return dom

    def _undo_create(self, domid: int) -> None:
        """Take a half-built domain away again, so a failed create changes nothing."""
        dom = self.hv.domains.get(domid)
        if dom is None:
            return
        try:
            _devices().disconnect(self.hv, dom)
        finally:
            self.hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], domid)

    def load_config(self, path: str) -> DomainConfig:
        from vmlab.toolstack.config import read_config_file
        text = read_config_file(path)
        return parse_xm_config(text, source=path)

    def _check_create(self, config: DomainConfig) -> None:
        from vmlab.toolstack.xminfo import check_hvm_capable
        check_hvm_capable(self.hv, config)
        if any(d.name == config.name for d in self.hv.domains.values()):
            raise ConfigError(f"name={config.name!r} is already used by a domain on {self.hv.host.name}; "
                              "choose another name or `xm destroy` the old one")
        need = frames_from_mib(config.memory_mib)
        free = self.hv.memory.free_frames
        if need > free:
            raise CapacityError(f"memory={config.memory_mib} MiB exceeds the {mib_from_frames(free)} MiB free on "
                                f"{self.hv.host.name}; lower memory or destroy/balloon a guest")
        _devices().check(self.hv, config)

    def _build(self, domid: int, config: DomainConfig, pfns: np.ndarray) -> None:
        """What libxc's domain builder does: vCPUs, max memory, populate the physmap."""
        self._call("domctl", C.XEN_DOMCTL["max_vcpus"], domid, config.vcpus)
        self._call("domctl", C.XEN_DOMCTL["max_mem"], domid, config.max_mib * 1024)
        done = self._call("memory_op", C.XENMEM_populate_physmap, domid, pfns.size, pfns)
        if done != pfns.size:
            raise CapacityError(f"only {done} of {pfns.size} pages could be populated for {config.name}; free memory first")

    # --- life cycle ---------------------------------------------------------------
    def destroy(self, ref: str | int) -> None:
        dom = self._domU(ref, "destroy")
        _devices().disconnect(self.hv, dom)
        self._call("domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)

    def pause(self, ref: str | int) -> None:
        dom = self._domU(ref, "pause")
        if dom.state is DomainState.PAUSED:
            raise DomainStateError(f"xm pause {ref}: {dom.name} is already paused; `xm unpause` it instead")
        if not dom.is_live:
            raise DomainStateError(f"xm pause {ref}: {dom.name} is {dom.state.value}; only a running or blocked guest can be paused")
        self._call("domctl", C.XEN_DOMCTL["pausedomain"], dom.domid)

    def unpause(self, ref: str | int) -> None:
        dom = self._domU(ref, "unpause")
        if dom.state is not DomainState.PAUSED:
            raise DomainStateError(f"xm unpause {ref}: {dom.name} is {dom.state.value}, not paused; nothing to do")
        self._call("domctl", C.XEN_DOMCTL["unpausedomain"], dom.domid)

    def shutdown(self, ref: str | int, *, reason: int = C.SHUTDOWN_poweroff) -> None:
        """Ask the guest to shut down (xenstore control/shutdown); it acts, then xend reaps it."""
        dom = self._domU(ref, "shutdown")
        if not dom.is_live:
            hint = "`xm unpause` it first" if dom.state is DomainState.PAUSED else "use `xm destroy`"
            raise DomainStateError(f"xm shutdown {ref}: {dom.name} is {dom.state.value} and cannot act on the request; {hint}")
        word = {C.SHUTDOWN_poweroff: "poweroff", C.SHUTDOWN_reboot: "reboot"}.get(reason, "halt")
        self._xend_shutdown(dom, word, reason)
        self.reap()

    def _xend_shutdown(self, dom: Domain, word: str, reason: int) -> None:
        """XendDomainInfo.shutdown (Xen 3.4): write control/shutdown, then, for an HVM guest, read
        HVM_PARAM_CALLBACK_IRQ: 0 means no PV drivers watch xenstore, so dom0 shuts the domain down
        from outside (xc.domain_shutdown = sched_op SCHEDOP_remote_shutdown: a hard stop, a hard
        reset, or a suspend for save). Otherwise the guest's xenbus watch fires and its kernel
        stops itself with SCHEDOP_shutdown."""
        self._write_control(dom, word)
        if dom.kind is DomainKind.HVM:
            param = {"domid": dom.domid, "index": C.HVM_PARAM_CALLBACK_IRQ}
            self._call("hvm_op", C.HVMOP_get_param, param)
            if not param["value"]:
                self._call("sched_op", C.SCHEDOP_remote_shutdown, {"domid": dom.domid, "reason": reason},
                           why=f"dom0 could not {word} {dom.name}")
                return
        rc = self.hv.hypercall(dom.domid, "sched_op", C.SCHEDOP_shutdown, reason)
        if rc < 0:
            raise HypercallError("sched_op", rc, f"{dom.name} could not {word}")

    def _write_control(self, dom: Domain, word: str) -> None:
        from vmlab.io.system import io_system
        xs = io_system(self.hv).xenstore
        if f"/local/domain/{dom.domid}" in xs.nodes:
            xs.write(0, f"/local/domain/{dom.domid}/control/shutdown", word)

    def reboot(self, ref: str | int) -> Domain:
        dom = self._domU(ref, "reboot")
        name = dom.name
        if dom.config.on_reboot == "destroy":
            raise DomainStateError(f"xm reboot {ref}: on_reboot='destroy' in {name}'s config would not bring it back; "
                                   "use `xm shutdown` or set on_reboot='restart'")
        self.shutdown(ref, reason=C.SHUTDOWN_reboot)
        return self.lookup(name)

    def reap(self) -> None:
        """Apply on_poweroff / on_reboot / on_crash to guests that stopped."""
        for dom in list(self.hv.domains.values()):
            if dom.state not in (DomainState.SHUTDOWN, DomainState.CRASHED):
                continue
            if dom.state is DomainState.CRASHED:
                action = dom.config.on_crash
            elif dom.shutdown_reason == C.SHUTDOWN_reboot:
                action = dom.config.on_reboot
            elif dom.shutdown_reason == C.SHUTDOWN_suspend:
                continue  # a suspended guest waits for `xm save` to collect it
            else:
                action = dom.config.on_poweroff
            if action == "preserve":
                continue
            config = dom.config
            _devices().disconnect(self.hv, dom)
            self._call("domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)
            if action.endswith("restart"):
                self.create(config)

    # --- memory and vCPUs ---------------------------------------------------------
    def mem_set(self, ref: str | int, mib: int | str) -> int:
        """Set the balloon target; returns the MiB the guest actually holds afterwards."""
        dom = self.lookup(ref)
        mib = parse_size_mib(mib, what="mem-set")
        if mib < 16:
            raise ConfigError(f"xm mem-set {ref} {mib}: below 16 MiB no guest kernel survives; give at least 16")
        if frames_from_mib(mib) > dom.max_pages and not dom.privileged:
            raise ConfigError(f"xm mem-set {ref} {mib}: above maxmem {mib_from_frames(dom.max_pages)} MiB; "
                              f"raise it first with `xm mem-max {ref} {mib}`")
        linux.balloon(self.hv, dom.domid, frames_from_mib(mib))
        return dom.memory_mib

    def mem_max(self, ref: str | int, mib: int | str) -> None:
        dom = self._domU(ref, "mem-max")
        mib = parse_size_mib(mib, what="mem-max")
        if frames_from_mib(mib) < dom.tot_pages:
            raise ConfigError(f"xm mem-max {ref} {mib}: below the {dom.memory_mib} MiB the guest holds now; "
                              f"balloon it down first with `xm mem-set {ref} {mib}`")
        self._call("domctl", C.XEN_DOMCTL["max_mem"], dom.domid, mib * 1024)

    def vcpu_set(self, ref: str | int, n: int) -> None:
        """xm vcpu-set: xend writes cpu/<i>/availability in xenstore; the PV guest's hotplug
        handler then brings vCPUs up or down itself with VCPUOP_up / VCPUOP_down."""
        dom = self._domU(ref, "vcpu-set")
        if not isinstance(n, int) or not 1 <= n <= dom.config.vcpus:
            raise ConfigError(f"xm vcpu-set {ref} {n}: must be 1..{dom.config.vcpus} (the vcpus= the guest was created with)")
        if dom.kind is DomainKind.HVM:
            raise DomainStateError(f"xm vcpu-set {ref}: {dom.name} is an HVM guest without PV drivers; it cannot "
                                   "hot-plug vCPUs; change vcpus= in its config and restart it")
        if not dom.is_live:
            raise DomainStateError(f"xm vcpu-set {ref}: {dom.name} is {dom.state.value}; the guest must run to act on it")
        from vmlab.io.system import io_system
        xs = io_system(self.hv).xenstore
        if f"/local/domain/{dom.domid}" in xs.nodes:
            for i in range(dom.config.vcpus):
                xs.write(0, f"/local/domain/{dom.domid}/cpu/{i}/availability", "online" if i < n else "offline")
        cur = dom.vcpus_online
        order = [(C.VCPUOP_up, v) for v in range(cur, n)] + [(C.VCPUOP_down, v) for v in range(cur - 1, n - 1, -1)]
        for op, v in order:
            rc = self.hv.hypercall(dom.domid, "vcpu_op", op, v)
            if rc < 0:
                raise HypercallError("vcpu_op", rc, f"{dom.name} could not change vCPU {v}")

    # --- hot-plug -------------------------------------------------------------------
    def block_attach(self, ref: str | int, disk: str) -> None:
        """xm block-attach: add a disk ('file:/OVS/...,xvdb,w') to a running PV guest."""
        dom = self._domU(ref, "block-attach")
        _devices().block_attach(self.hv, dom, disk)

    def network_attach(self, ref: str | int, vif: str = "") -> None:
        """xm network-attach: add a vif ('bridge=xenbr0[,mac=...]') to a running guest."""
        dom = self._domU(ref, "network-attach")
        _devices().network_attach(self.hv, dom, vif)

    # --- inspection -----------------------------------------------------------------
    def list(self, ref: str | int | None = None) -> list[DomainInfo]:
        doms = [self.lookup(ref)] if ref is not None else [self.hv.domains[k] for k in sorted(self.hv.domains)]
        infos = []
        for d in doms:
            out: dict = {}
            self._call("domctl", C.XEN_DOMCTL["getdomaininfo"], d.domid, None, out)
            infos.append(out["info"])
        return infos

    def list_text(self, ref: str | int | None = None) -> str:
        return format_list(self.list(ref))

    def console(self, ref: str | int) -> str:
        return "\n".join(self.lookup(ref).console)

    def info(self) -> str:
        """`xm info`: Xen 3.4's fields in its order and format (toolstack/xminfo.py)."""
        from vmlab.toolstack.xminfo import format_info
        return format_info(self.hv)

    # --- save / restore ----------------------------------------------------------------
    def save(self, ref: str | int, path: str) -> None:
        """xm save: suspend the guest, write its memory and state to `path`, destroy it.

        A running guest is suspended the way XendCheckpoint.save does it, through
        XendDomainInfo.shutdown('suspend'): a PV guest (or an HVM guest with PV drivers)
        suspends itself on control/shutdown = "suspend"; an HVM guest without PV drivers
        is suspended from dom0 (SCHEDOP_remote_shutdown, SHUTDOWN_suspend). A paused guest
        is saved as it is. If the file cannot be written the guest is resumed
        (XEN_DOMCTL_resumedomain).
        """
        from vmlab.toolstack.snapshot import write_save_file
        dom = self._domU(ref, "save")
        if not (dom.is_live or dom.state is DomainState.PAUSED):
            raise DomainStateError(f"xm save {ref}: {dom.name} is {dom.state.value}; only a running or paused guest can be saved")
        was_paused = dom.state is DomainState.PAUSED
        undo = lambda: None
        if not was_paused:
            self._xend_shutdown(dom, "suspend", C.SHUTDOWN_suspend)
            undo = lambda: self._call("domctl", C.XEN_DOMCTL["resumedomain"], dom.domid)
        try:
            write_save_file(path, self.hv, dom, resume_paused=was_paused)
        except Exception:
            undo()
            raise
        _devices().disconnect(self.hv, dom)
        self._call("domctl", C.XEN_DOMCTL["destroydomain"], dom.domid)

    def restore(self, path: str) -> Domain:
        from vmlab.toolstack.snapshot import check_fits, read_save_file
        image = read_save_file(path)
        check_fits(path, image, self.hv.memory.total_frames)
        config = image.config
        self._check_create(config.with_(memory_mib=max(16, mib_from_frames(image.pfns.size))))
        out: dict = {}
        self._call("domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, config, out)
        domid = out["domid"]
        try:
            self._build(domid, config, pfns=image.pfns)
            dom = self.hv.domains[domid]
            self.hv.memory.content[dom.p2m[image.pfns]] = image.content
            dom.console = list(image.console)
            dom.load = image.load
            dom.vcpus_online = image.vcpus_online
            dom.target_pages = image.target_pages
            dom.hvm_params = dict(image.hvm_params)   # in Xen's HVM context record
            _devices().connect(self.hv, dom, macs=list(image.macs) or None)  # a restored guest keeps its MACs
        except Exception:
            self._undo_create(domid)
            raise
        if not image.paused:
            self._call("domctl", C.XEN_DOMCTL["unpausedomain"], domid)
        return dom
