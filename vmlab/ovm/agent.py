"""The Oracle VM Agent (ovs-agent): the daemon in dom0 of every server.

It does what the Manager asks on its own server, through xm (`Toolstack`) and
the hypervisor, and answers with a `Reply`. Which of Oracle VM 2.x's three
agent roles it plays (Server Pool Master, Utility Server, Virtual Machine
Server) is the Manager's inventory; the code for every role is in every agent.
"""

from __future__ import annotations

from vmlab.errors import VmlabError
from vmlab.hardware.memory import mib_from_frames
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.migrate import migrate_domain
from vmlab.migration.policies import Xen3Policy
from vmlab.ovm import messages as M
from vmlab.ovm.network import add_vlan_bridge
from vmlab.migration.link import Link
from vmlab.toolstack.xm import Toolstack

__all__ = ["Agent"]


class Agent:
    """One server's agent. `alive` False = the server is down; `die_after_bytes` injects a death mid-copy."""

    def __init__(self, hv: Hypervisor, peers: dict[str, Hypervisor]) -> None:
        self.hv = hv
        self.xm = Toolstack(hv)
        self.peers = peers          # the pool's servers, for relocation (xend's port 8002)
        self.alive = True
        self.die_after_bytes: int | None = None
        self.log: list[str] = []

    @property
    def name(self) -> str:
        return self.hv.host.name

    def handle(self, req: M.Request) -> M.Reply:
        if not self.alive:
            return self._fail(req, M.UNREACHABLE, f"the agent on {self.name} does not answer on port 8899 (server down)")
        self.log.append(req.verb)
        try:
            return getattr(self, "_" + req.verb)(req)
        except VmlabError as e:
            return self._fail(req, M.REFUSED, str(e))

    def _fail(self, req: M.Request, kind: str, message: str, done: int = 0) -> M.Reply:
        return M.Reply(server=self.name, verb=req.verb, failure=M.Failure(kind=kind, message=message, done_bytes=done))

    def _ok(self, req: M.Request, value=None) -> M.Reply:
        return M.Reply(server=self.name, verb=req.verb, value=value)

    # --- the verbs ----------------------------------------------------------------------
    def _StartGuest(self, req: M.StartGuest) -> M.Reply:
        dom = self.xm.create(req.config)
        return self._ok(req, dom.domid)

    def _StopGuest(self, req: M.StopGuest) -> M.Reply:
        if req.force:
            self.xm.destroy(req.name)
        else:
            self.xm.shutdown(req.name)
        return self._ok(req)

    def _MigrateGuest(self, req: M.MigrateGuest) -> M.Reply:
        report = migrate_domain(self.hv, self.peers[req.target], self.xm.lookup(req.name), policy=Xen3Policy(),
                                link=Link(bandwidth_mbps=req.bandwidth_mbps))
        return self._ok(req, report)

    def _CopyImage(self, req: M.CopyImage) -> M.Reply:
        if self.die_after_bytes is not None and self.die_after_bytes < req.nbytes:
            done = self.die_after_bytes
            self.alive = False
            return self._fail(req, M.DIED, f"the Utility Server {self.name} died after copying {done >> 20} of "
                                           f"{req.nbytes >> 20} MiB of {req.dst}", done)
        return self._ok(req, req.nbytes)

    def _Heartbeat(self, req: M.Heartbeat) -> M.Reply:
        return self._ok(req, self.hv.now_ns)

    def _GetInfo(self, req: M.GetInfo) -> M.Reply:
        return self._ok(req, {"free_mib": mib_from_frames(self.hv.memory.free_frames),
                              "guests": sorted(d.name for d in self.hv.domains.values() if not d.privileged)})

    def _AddVlan(self, req: M.AddVlan) -> M.Reply:
        return self._ok(req, add_vlan_bridge(self.hv, req.vlan))
