"""Guest life cycle through the agents: start, stop, delete, migrate; VLANs; the HA switches."""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import frames_from_mib
from vmlab.hypervisor.domain import DiskSpec, DomainConfig, DomainKind, VifSpec
from vmlab.errors import MigrationRefused
from vmlab.toolstack.migrate import check_migration
from vmlab.ovm import constants as K
from vmlab.ovm import messages as M
from vmlab.ovm.errors import HaRefused, NoCapacity, Refused, UnknownObject, VlanMissing
from vmlab.ovm.inventory import Guest, ServerState
from vmlab.ovm.network import bridge_for, check_vlan_id, vlans_on
from vmlab.toolstack.config import format_xm_config, parse_xm_config

__all__ = ["GuestOps", "guest_config"]


def guest_config(g: Guest, mount: str) -> DomainConfig:
    """What /OVS/running_pool/<vm>/vm.cfg says for guest `g`."""
    hvm = g.kind == "hvm"
    disks = [DiskSpec(backend="file", path=f"{mount}/running_pool/{g.name}/System.img", vdev="hda" if hvm else "xvda",
                      mode="w")]
    if g.iso:
        disks.append(DiskSpec(backend="file", path=g.iso, vdev="hdc", mode="r"))
    return DomainConfig(name=g.name, kind=DomainKind.HVM if hvm else DomainKind.PV, memory_mib=g.memory_mib,
                        vcpus=g.vcpus, bootloader="" if hvm else "/usr/bin/pygrub", disks=tuple(disks),
                        vifs=(VifSpec(bridge=bridge_for(g.vlan), mac=g.mac),))


class GuestOps:
    """Mixed into Manager."""

    # --- vm.cfg and images ---------------------------------------------------------------
    def cfg_path(self, g: Guest) -> str:
        return f"{self.repos[g.repo].mount}/running_pool/{g.name}/vm.cfg"

    def image(self, g: Guest):
        repo = self.repos[g.repo]
        return repo.images[f"{repo.mount}/running_pool/{g.name}/System.img"]

    def write_cfg(self, g: Guest) -> str:
        text = f"uuid = {g.uuid!r}\n" + format_xm_config(guest_config(g, self.repos[g.repo].mount))
        self.repos[g.repo].files[self.cfg_path(g)] = text
        return text

    def vm_cfg(self, name: str) -> str:
        g = self.guest(name)
        return self.repos[g.repo].files[self.cfg_path(g)]

    # --- start / stop ---------------------------------------------------------------------
    def start(self, name: str, server: str | None = None, *, exclude=()) -> Guest:
        """Start a stopped guest: on `server`, else where placement says; the agent reads vm.cfg."""
        g = self.guest(name)
        if g.state == "running":
            raise Refused(f"guest {name} already runs on {g.server}; stop it first")
        repo = self.repos[g.repo]
        if server is None:
            self.too_big(g.memory_mib)
            server = repo.owner or self.place(g, exclude=exclude)
            if server is None:
                raise NoCapacity(f"no running Virtual Machine Server has {g.memory_mib} MiB free"
                                 f"{'' if g.vlan is None else f' and VLAN {g.vlan}'} for {name}; free memory or add the VLAN")
        self.server(server)
        if repo.owner not in (None, server):
            raise Refused(f"{name}'s image is on {repo.owner}'s local disk; it can only start on {repo.owner}")
        if g.vlan is not None and g.vlan not in vlans_on(self.pool.servers[server]):
            raise VlanMissing(f"VLAN {g.vlan} is not configured on {server}; `vmlab ovm vlan add {g.vlan} {server}` first")
        cfg = parse_xm_config(repo.files[self.cfg_path(g)], source=self.cfg_path(g))
        self.call(server, M.StartGuest(config=cfg))
        epoch = self.image(g).open(f"{name}@{server}", self.now_s)
        self.guests[name] = g = g.with_(server=server, state="running", epoch=epoch)
        self.log("create", server=server, guest=name, detail=f"started from {self.cfg_path(g)}")
        return g

    def stop(self, name: str) -> Guest:
        g = self.guest(name)
        if g.state != "running":
            raise Refused(f"guest {name} is {g.state}; only a running guest can be stopped")
        self.call(g.server, M.StopGuest(name=name))
        self.image(g).close(g.epoch, self.now_s)
        self.guests[name] = g = g.with_(server=None, state="stopped", epoch=None)
        return g

    def delete(self, name: str) -> None:
        g = self.guest(name)
        if g.state == "running":
            self.stop(name)
        repo = self.repos[g.repo]
        repo.remove_tree(f"{repo.mount}/running_pool/{name}/")
        del self.guests[name]

    # --- HA switches (Oracle VM 2.2: the pool's AND the guest's) -----------------------------
    def set_pool_ha(self, on: bool) -> None:
        if on and not any(r.shared for r in self.repos.values()):
            raise HaRefused(f"pool {self.pool.name} has no shared repository; HA needs NFS, iSCSI or FC storage "
                            "that every server mounts")
        self.ha_enabled = bool(on)

    def set_guest_ha(self, name: str, on: bool, *, preferred: tuple[str, ...] | None = None) -> Guest:
        g = self.guest(name)
        if on and not self.repos[g.repo].shared:
            raise HaRefused(f"guest {name} lives on {g.repo} ({self.repos[g.repo].kind.value} storage of "
                            f"{self.repos[g.repo].owner}); HA restarts guests on other servers, so it needs a shared "
                            "repository: clone the guest into one")
        for s in preferred or ():
            self.server(s)
        self.guests[name] = g = g.with_(ha=bool(on), preferred=tuple(preferred) if preferred is not None else g.preferred)
        return g

    # --- VLANs -----------------------------------------------------------------------------
    def add_vlan(self, vlan: int, servers=None) -> list[str]:
        check_vlan_id(vlan)
        names = list(servers) if servers else list(self.servers)
        for s in names:
            self.server(s)
        return [self.call(s, M.AddVlan(vlan=vlan)) for s in names]

    def can_reach(self, a: str, b: str) -> bool:
        """Can guest a send frames to guest b? Same VLAN, both running, their servers on one network side."""
        ga, gb = self.guest(a), self.guest(b)
        return (ga.state == gb.state == "running" and ga.vlan == gb.vlan
                and self.same_side(ga.server, gb.server))

    # --- migration ---------------------------------------------------------------------------
    def migration_refusal(self, g: Guest, target: str, planned=None):
        """The error (one line) that moving `g` to `target` would hit, or None; checked before anything moves."""
        repo = self.repos[g.repo]
        if not repo.shared:
            return Refused(f"{g.name}: its image is on {repo.kind.value} storage of {repo.owner}; only guests in a "
                           "shared repository (NFS, iSCSI, FC) can live-migrate")
        if g.vlan is not None and g.vlan not in vlans_on(self.pool.servers[target]):
            return VlanMissing(f"{g.name}: VLAN {g.vlan} is not configured on {target}; add it there first")
        rec = self.servers[target]
        if rec.state is not ServerState.UP or not self.reachable(target):
            how = "in maintenance" if rec.state is ServerState.MAINTENANCE else rec.state.value
            return Refused(f"{g.name}: {target} is {how}; pick a running server of the pool")
        need = frames_from_mib(g.memory_mib + (planned or {}).get(target, 0))
        if self.pool.servers[target].memory.free_frames < need:
            return NoCapacity(f"{g.name}: {target} has {self.free_mib(target)} MiB free, {g.memory_mib} MiB needed")
        try:   # xend's own stage-0 checks (vmlab.toolstack.migrate.check_migration)
            src = self.pool.servers[g.server]
            check_migration(src, self.pool.servers[target], self.agents[g.server].xm.lookup(g.name))
        except MigrationRefused as e:
            return Refused(f"{g.name}: {e}")
        return None

    def migrate(self, name: str, target: str, *, bandwidth_mbps: float | None = None):
        g = self.guest(name)
        self.server(target)
        if g.state != "running":
            raise Refused(f"guest {name} is {g.state}; only a running guest migrates")
        err = self.migration_refusal(g, target)
        if err is not None:
            raise err
        bw = bandwidth_mbps or self.pool.link.bandwidth_mbps
        report = self.call(g.server, M.MigrateGuest(name=name, target=target, bandwidth_mbps=bw))
        self.log("migrate", server=target, guest=name, detail=f"from {g.server}: {report.total_time_ms / 1000:.2f} s, "
                 f"downtime {report.downtime_ms:.0f} ms")
        self.guests[name] = g.with_(server=target)
        return report

    # --- what runs where -------------------------------------------------------------------------
    def instances(self):
        """(server, guest name, epoch) of every live guest instance, stale ones included."""
        out = [(g.server, g.name, g.epoch) for g in self.guests.values() if g.state == "running"]
        out += [(s, n, e) for (s, n), e in self.orphans.items()]
        return out

    def disk_writes(self, seconds: float) -> None:
        """Every live instance whose server runs and sees the storage rewrites some extents."""
        n = int(round(K.GUEST_DISK_WRITES_PER_S * seconds))
        if n <= 0:
            return
        for server, name, epoch in self.instances():
            rec = self.servers.get(server)
            if rec is None or rec.state in (ServerState.DOWN, ServerState.FENCED) or server in self.storage_cut:
                continue
            if name in self.guests:
                rng = np.random.default_rng(self.rng_seed(name, epoch, round(self.now_s * 1000)))
                self.image(self.guests[name]).write(epoch, n, rng)
