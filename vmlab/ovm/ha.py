"""High availability: heartbeats, failure detection, fencing, master re-election, HA restart.

With fencing (OCFS2's O2CB stack, the Oracle VM 2.x cluster):
  * every server writes its disk heartbeat every 2 s (O2HB_REGION_TIMEOUT_MS); a server whose
    heartbeat has not changed for 60 s ((O2HB_DEFAULT_DEAD_THRESHOLD - 1) x 2 s) is dead;
  * a server that cannot write its own heartbeat for that long fences itself (reboots), so it
    can no longer write shared images (o2hb_write_timeout);
  * network keepalives every 2 s; after the 30 s idle timeout (O2CB_IDLE_TIMEOUT_MS) the cluster
    decides quorum (fs/ocfs2/cluster/quorum.c, o2quo_make_decision): the bigger side survives, an
    even split keeps the side with the lowest node number, and the other side fences itself.
Without fencing the master declares a server dead as soon as one heartbeat times out, and
nothing stops that server: the teaching case where one guest runs twice on one image.

The master restarts a dead server's guests if HA is on for the pool AND the guest (Oracle VM
2.2 User's Guide, ch. 7): on surviving servers with the memory and the guest's VLAN, preferred
servers first, then the most free memory. A restart boots from the disk image: whatever the
guest had in memory is lost.
"""

from __future__ import annotations

import heapq

import numpy as np

from vmlab.errors import VmlabError
from vmlab.ovm import constants as K
from vmlab.ovm import messages as M
from vmlab.ovm.errors import Refused
from vmlab.ovm.inventory import Role, ServerState

__all__ = ["HaOps"]


class HaOps:
    """Mixed into Manager."""

    # --- faults ------------------------------------------------------------------------------
    def fail_server(self, name: str) -> None:
        """The server dies (power, panic): its agent stops answering and its memory is gone."""
        rec = self.server(name)
        if rec.state in (ServerState.DOWN, ServerState.FENCED):
            raise Refused(f"server {name} is already {rec.state.value}; `vmlab sim heal` brings it back")
        self.agents[name].alive = False
        self.servers[name] = rec.with_(state=ServerState.DOWN)
        self.log("fault", server=name, detail="server failed: no more network or disk heartbeats")
        self._power_off(name)
        if self.fencing:
            self.schedule(self.now_s + K.NET_IDLE_TIMEOUT_S, "net-lost", name)
            self.schedule(self.now_s + K.DISK_HB_TIMEOUT_S, "dead", name)
        else:
            self.schedule(self.now_s + K.NET_IDLE_TIMEOUT_S, "dead", name)

    def partition(self, groups) -> None:
        """Split the network into `groups` of servers (each server in exactly one); storage stays shared."""
        groups = [frozenset(g) for g in groups]
        named = [s for g in groups for s in g]
        for s in named:
            self.server(s)
        if sorted(named) != sorted(self.servers) or len(groups) < 2 or not all(groups):
            raise Refused(f"partition {[sorted(g) for g in groups]}: name every server of the pool exactly once, in "
                          f"two or more non-empty groups (servers: {', '.join(self.servers)})")
        self.partitioned = groups
        self.log("fault", detail="network partition: " + " | ".join(",".join(sorted(g)) for g in groups))
        self.schedule(self.now_s + K.NET_IDLE_TIMEOUT_S, "quorum", "")

    def isolate(self, server: str) -> None:
        self.partition([set(self.servers) - {server}, {server}])

    def cut_storage(self, server: str) -> None:
        """The server loses its path to the shared storage: it cannot write its disk heartbeat."""
        self.server(server)
        self.storage_cut.add(server)
        self.log("fault", server=server, detail="lost its storage path: disk heartbeat writes fail")
        if self.fencing:
            self.schedule(self.now_s + K.DISK_HB_TIMEOUT_S, "self-fence", server)
        self.schedule(self.now_s + K.DISK_HB_TIMEOUT_S, "dead", server)

    # --- the clock -----------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Let simulated time pass: heartbeats time out, servers fence, guests restart, disks get written."""
        if seconds < 0:
            raise Refused(f"seconds={seconds} is negative; time only moves forward")
        end = self.now_s + seconds
        while self.queue and self.queue[0][0] <= end:
            at, _, action, server = heapq.heappop(self.queue)
            at = max(at, self.now_s)   # a timer that expired during an operation fires now
            self._run_for(at - self.now_s)
            self.now_s = at
            getattr(self, "_on_" + action.replace("-", "_"))(server)
        self._run_for(end - self.now_s)
        self.now_s = end

    def _run_for(self, dt: float) -> None:
        if dt <= 0:
            return
        self.disk_writes(dt)
        for name, hv in self.pool.servers.items():
            if self.servers[name].state not in (ServerState.DOWN, ServerState.FENCED):
                hv.advance(dt)

    # --- what the cluster does when a timer fires ------------------------------------------------
    def _on_net_lost(self, server: str) -> None:
        if self._healed(server):
            return
        self.log("heartbeat-missed", server=server, detail=f"{int(K.NET_IDLE_TIMEOUT_S / K.NET_KEEPALIVE_S)} network "
                 f"keepalives missed: idle timeout {K.NET_IDLE_TIMEOUT_S:g} s (O2CB_IDLE_TIMEOUT_MS)")

    def _on_self_fence(self, server: str) -> None:
        if server in self.storage_cut and self.servers[server].state is ServerState.UP:
            self._fence(server, f"could not write its disk heartbeat for {K.DISK_HB_TIMEOUT_S:g} s")

    def _on_dead(self, server: str) -> None:
        if self._healed(server):
            return
        if self.fencing:
            self.log("heartbeat-missed", server=server, detail=f"{int(K.DISK_HB_TIMEOUT_S / K.DISK_HB_INTERVAL_S)} disk "
                     f"heartbeats missed: {K.DISK_HB_TIMEOUT_S:g} s (O2HB dead threshold {K.DISK_HB_DEAD_THRESHOLD})")
        else:
            self.log("heartbeat-missed", server=server, detail="a heartbeat timed out; no fencing, so the master "
                     "declares the server dead on that alone")
        self.log("dead", server=server, detail="declared dead by the cluster")
        self.recover(server)

    def _on_quorum(self, _: str) -> None:
        if self.partitioned is None:
            return
        if not self.fencing:
            for s in sorted(self.servers, key=lambda n: self.servers[n].node):
                if not self.same_side(self.master, s) and self.servers[s].state is ServerState.UP:
                    self._on_net_lost(s)
                    self._on_dead(s)
            return
        keep = max(self.partitioned, key=lambda g: (len(g), -min(self.servers[s].node for s in g)))
        for s in sorted(self.servers, key=lambda n: self.servers[n].node):
            if s not in keep and self.servers[s].state is ServerState.UP:
                self._on_net_lost(s)
                side = next(g for g in self.partitioned if s in g)
                self._fence(s, f"lost quorum: its side has {len(side)} of {len(self.servers)} servers")
                self.schedule(self.now_s + K.DISK_HB_TIMEOUT_S, "dead", s)

    def _healed(self, server: str) -> bool:
        rec = self.servers.get(server)
        return rec is None or (rec.state is ServerState.UP and self.agents[server].alive
                               and server not in self.storage_cut and self.same_side(self.master or server, server))

    def _fence(self, server: str, why: str) -> None:
        self.agents[server].alive = False
        self.servers[server] = self.servers[server].with_(state=ServerState.FENCED)
        self.log("fence", server=server, detail=f"fenced itself (reboot): {why}")
        self._power_off(server)

    def _power_off(self, server: str) -> None:
        """The server's memory is gone: its guest instances end, their image mounts close."""
        xm = self.agents[server].xm
        for dom in [d for d in xm.hv.domains.values() if not d.privileged]:
            g = self.guests.get(dom.name)
            if g is not None and g.server == server and g.state == "running":
                pages = int(np.count_nonzero(xm.hv.memory.content[dom.mfns()]))
                self.image(g).close(g.epoch, self.now_s)
                self.guests[g.name] = g.with_(state="down", epoch=None)
                self.log("lost", server=server, guest=g.name, detail=f"{pages} pages of memory content lost")
            elif (server, dom.name) in self.orphans:
                epoch = self.orphans.pop((server, dom.name))
                if dom.name in self.guests:
                    self.image(self.guests[dom.name]).close(epoch, self.now_s)
            xm.destroy(dom.domid)

    # --- recovery ---------------------------------------------------------------------------------
    def elect(self) -> str | None:
        """A new Server Pool Master: the lowest node number among servers up on the surviving side."""
        old = self.master
        alive = [s for s in self.servers.values() if s.state is ServerState.UP and self.agents[s.name].alive
                 and s.name not in self.storage_cut]
        if self.partitioned is not None and old is not None and self.agents[old].alive:
            alive = [s for s in alive if self.same_side(old, s.name)]
        if not alive:
            return None
        new = min(alive, key=lambda s: s.node).name
        if old is not None:
            self.servers[old] = self.servers[old].with_(roles=self.servers[old].roles - {Role.MASTER})
        self.servers[new] = self.servers[new].with_(roles=self.servers[new].roles | {Role.MASTER})
        self.log("master", server=new, detail=f"elected Server Pool Master (was {old})")
        return new

    def recover(self, server: str) -> None:
        master = self.master
        if master is None or master == server or not self.agents[master].alive:
            if self.elect() is None:
                return
        planned: dict[str, int] = {}
        for g in sorted((g for g in self.guests.values() if g.server == server and g.state in ("running", "down")),
                        key=lambda g: g.name):
            if g.state == "running":   # no fencing: the old instance still runs over there
                self.orphans[(server, g.name)] = g.epoch
            self.guests[g.name] = g = g.with_(state="stopped", server=None, epoch=None)
            self._restart(g, server, planned)

    def _restart(self, g, dead: str, planned: dict[str, int]) -> None:
        if not (self.ha_enabled and g.ha):
            why = "HA is off for the pool" if not self.ha_enabled else "HA is off for this guest"
            self.guests[g.name] = g.with_(state="down")
            self.log("refused", guest=g.name, detail=f"not restarted: {why}")
            return
        target = self.place(g, exclude={dead}, planned=planned)
        if target is None:
            self.guests[g.name] = g.with_(state="down")
            vlan = "" if g.vlan is None else f" with VLAN {g.vlan}"
            self.log("refused", guest=g.name, detail=f"not restarted: no surviving server{vlan} has {g.memory_mib} MiB free")
            return
        try:
            self.start(g.name, target)
        except VmlabError as e:
            self.guests[g.name] = self.guests[g.name].with_(state="down")
            self.log("refused", guest=g.name, detail=f"not restarted on {target}: {e}")
            return
        self.log("restart", server=target, guest=g.name, detail=f"HA restart from its disk image (was on {dead}); "
                 f"boots in ~{K.GUEST_BOOT_S:g} s (ILLUSTRATIVE)")

    def heal(self) -> None:
        """End every fault: the network joins, storage paths return, failed and fenced servers reboot and rejoin."""
        self.partitioned = None
        self.storage_cut.clear()
        self.queue.clear()
        for name, rec in list(self.servers.items()):
            if rec.state in (ServerState.DOWN, ServerState.FENCED):
                self.agents[name].alive = True
                self.servers[name] = rec.with_(state=ServerState.UP)
                self.log("heal", server=name, detail="rebooted and rejoined the pool (no guests)")
        for (server, name), epoch in sorted(self.orphans.items()):
            g = self.guests[name]
            self.call(server, M.StopGuest(name=name))
            img = self.image(g)
            img.close(epoch, self.now_s)
            self.log("split-brain", server=server, guest=name, detail=f"also ran on {g.server} at the same time; "
                     f"stale copy destroyed; {img.fsck()}")
        self.orphans.clear()
        if self.master is None or not self.agents[self.master].alive:
            self.elect()
        self.log("heal", detail="all faults cleared")
