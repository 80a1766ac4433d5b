"""The Oracle VM Manager: the pool's inventory, and every operation sent through the agents.

    m = Manager.create_pool("pool1", servers=3, storage="nfs")
    m.import_template("OVM_EL5U3_X86_64_PVM", memory_mib=512)
    m.create_from_template("OVM_EL5U3_X86_64_PVM", "web1", ha=True)
    m.set_pool_ha(True); m.fail_server("ovs2"); m.advance(120)

The Manager talks to the Server Pool Master's agent, which dispatches to the
agent on the server concerned; a server the master cannot reach (down, fenced,
on the other side of a partition) does not answer. xm still works on one server
(`m.pool.xm("ovs1")`); the Manager works on the pool. Time is simulated (`now_s`).
"""

from __future__ import annotations

import heapq
import zlib
from contextlib import contextmanager

from vmlab.errors import ConfigError
from vmlab.hardware.host import Disk, HostSpec, StorageKind
from vmlab.hardware.memory import frames_from_mib, mib_from_frames
from vmlab.ovm import constants as K
from vmlab.ovm import messages as M
from vmlab.ovm.agent import Agent
from vmlab.ovm.errors import AgentUnreachable, MasterLost, NoCapacity, UnknownObject
from vmlab.ovm.events import Event
from vmlab.ovm.guests import GuestOps
from vmlab.ovm.ha import HaOps
from vmlab.ovm.maintenance import MaintenanceOps
from vmlab.ovm.templates import TemplateOps
from vmlab.ovm.inventory import Guest, Role, ServerRecord, ServerState, Template
from vmlab.ovm.network import guest_vlans, vlans_on
from vmlab.ovm.storage import Repository
from vmlab.migration.link import Link
from vmlab.toolstack.pool import ServerPool

__all__ = ["Manager", "server_spec"]


def server_spec(name: str, *, storage: str = "nfs", memory_mib: int = 4096, cpus: int = 4,
                local_repo: bool = False) -> HostSpec:
    """An Oracle VM server: dom0 on a local disk, /OVS on `storage`, optionally a local repository."""
    disks = [Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
             Disk(name="repo0", storage=StorageKind(storage), mount="/OVS", size_gib=2048)]
    if local_repo:
        disks.append(Disk(name="sdb", storage=StorageKind.LOCAL, mount="/var/ovs/mount/local", size_gib=500))
    return HostSpec(name=name, pcpus=cpus, memory_mib=memory_mib, disks=tuple(disks))


class Manager(GuestOps, TemplateOps, HaOps, MaintenanceOps):
    def __init__(self, pool: ServerPool, *, seed: int = 0, fencing: bool = True) -> None:
        self.pool = pool
        self.seed = seed
        self.fencing = fencing
        self.ha_enabled = False
        self.agents: dict[str, Agent] = {}
        self.servers: dict[str, ServerRecord] = {}
        self.repos: dict[str, Repository] = {}
        self.templates: dict[str, Template] = {}
        self.isos: dict[str, str] = {}          # iso name -> repository
        self.guests: dict[str, Guest] = {}
        self.now_s = 0.0
        self.events: list[Event] = []
        self.queue: list[tuple[float, int, str, str]] = []   # (time, seq, action, server)
        self.partitioned: list[frozenset[str]] | None = None
        self.storage_cut: set[str] = set()
        self.orphans: dict[tuple[str, str], int] = {}      # (server, guest) -> epoch of a stale instance
        self.serial = 0
        self.inject: dict[str, str] = {}       # fault injection: {"master-dies": "after-copy"}
        self.discover()

    @classmethod
    def create_pool(cls, name: str = "pool1", *, servers: int = 3, storage: str = "nfs", memory_mib: int = 4096,
                    cpus: int = 4, link: Link | None = None, local_repo: bool = False, seed: int = 0,
                    fencing: bool = True) -> "Manager":
        pool = ServerPool(name, link=link or Link())
        for i in range(servers):
            pool.add_server(server_spec(f"ovs{i + 1}", storage=storage, memory_mib=memory_mib, cpus=cpus,
                                        local_repo=local_repo))
        return cls(pool, seed=seed, fencing=fencing)

    # --- inventory ---------------------------------------------------------------------
    def discover(self) -> None:
        """Find servers and repositories the inventory does not know yet (and drop vanished ones)."""
        for gone in [s for s in self.servers if s not in self.pool.servers]:
            del self.servers[gone]
            self.agents.pop(gone, None)
        for name, hv in self.pool.servers.items():
            if name not in self.servers:
                first = not self.servers
                roles = {Role.MASTER, Role.UTILITY, Role.VM} if first else {Role.VM}
                node = 1 + max((r.node for r in self.servers.values()), default=-1)
                self.servers[name] = ServerRecord(name=name, node=node, roles=frozenset(roles))
            if name not in self.agents or self.agents[name].hv is not hv:   # a new or rebuilt server
                self.agents[name] = Agent(hv, self.pool.servers)
            for d in hv.host.spec.disks:
                if d.mount == "/OVS" or d.mount.startswith("/var/ovs/mount/"):
                    base = "OVS" if d.mount == "/OVS" else d.mount.rsplit("/", 1)[1]
                    shared = d.storage.shared
                    key = base if shared else f"{base}@{name}"
                    self.repos.setdefault(key, Repository(name=key, mount=d.mount, kind=d.storage,
                                                          owner=None if shared else name))

    def server(self, name: str) -> ServerRecord:
        try:
            return self.servers[name]
        except KeyError:
            raise UnknownObject(f"server {name!r} is not in pool {self.pool.name} (servers: "
                                f"{', '.join(self.servers)}); name one of those") from None

    def guest(self, name: str) -> Guest:
        try:
            return self.guests[name]
        except KeyError:
            raise UnknownObject(f"guest {name!r} is not in the Manager's inventory (guests: "
                                f"{', '.join(sorted(self.guests)) or 'none'}); create it first") from None

    def repo(self, name: str) -> Repository:
        try:
            return self.repos[name]
        except KeyError:
            raise UnknownObject(f"repository {name!r} does not exist (repositories: {', '.join(self.repos)}); "
                                "name one of those") from None

    @property
    def master(self) -> str | None:
        return next((s.name for s in self.servers.values() if Role.MASTER in s.roles), None)

    def with_role(self, role: Role) -> list[str]:
        return [s.name for s in self.servers.values() if role in s.roles and s.state is ServerState.UP]

    def set_roles(self, server: str, roles: frozenset[Role]) -> None:
        rec = self.server(server)
        if Role.MASTER in roles and self.master not in (None, server):
            old = self.servers[self.master]
            self.servers[old.name] = old.with_(roles=old.roles - {Role.MASTER})
        self.servers[server] = rec.with_(roles=frozenset(roles))

    def log(self, kind: str, *, server: str = "", guest: str = "", detail: str = "") -> Event:
        ev = Event(time_s=round(self.now_s, 3), kind=kind, server=server, guest=guest, detail=detail)
        self.events.append(ev)
        return ev

    def schedule(self, at_s: float, action: str, server: str) -> None:
        self.serial += 1
        heapq.heappush(self.queue, (at_s, self.serial, action, server))

    def rng_seed(self, *parts) -> list[int]:
        return [self.seed] + [zlib.crc32(str(p).encode()) for p in parts]

    def next_ids(self) -> tuple[str, str]:
        """A new uuid and MAC (Xen's OUI 00:16:3e), from the pool's own counter: deterministic."""
        self.serial += 1
        n = zlib.crc32(f"{self.pool.name}/{self.seed}/{self.serial}".encode())
        uuid = f"{n:08x}-{self.serial:04x}-4000-8000-{self.seed:04x}{n:08x}"
        mac = f"00:16:3e:{(n >> 16) & 0x7f:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}"
        return uuid, mac

    # --- reaching the agents -------------------------------------------------------------
    def reachable(self, server: str) -> bool:
        """Can the master's agent talk to `server` now (up, and on the master's side of a partition)?"""
        master = self.master
        if master is None or not self.agents[master].alive:
            return False
        rec = self.servers[server]
        if rec.state in (ServerState.DOWN, ServerState.FENCED) or not self.agents[server].alive:
            return False
        return self.same_side(master, server)

    def same_side(self, a: str, b: str) -> bool:
        if self.partitioned is None:
            return True
        return any(a in g and b in g for g in self.partitioned)

    def require_master(self) -> str:
        master = self.master
        if master is None or not self.agents[master].alive or self.servers[master].state is not ServerState.UP:
            raise MasterLost(f"the Server Pool Master {master} does not answer; a new master is elected when its "
                             f"heartbeat times out ({K.DISK_HB_TIMEOUT_S:g} s): advance time and retry")
        return master

    def send(self, server: str, req: M.Request) -> M.Reply:
        """Manager -> master agent -> `server`'s agent; the reply comes back the same way."""
        master = self.require_master()
        if not self.reachable(server):
            return M.Reply(server=server, verb=req.verb, failure=M.Failure(
                kind=M.UNREACHABLE, message=f"the agent on {server} does not answer the master {master}"))
        return self.agents[server].handle(req)

    def call(self, server: str, req: M.Request):
        reply = self.send(server, req)
        if reply.ok:
            return reply.value
        if reply.failure.kind == M.UNREACHABLE:
            raise AgentUnreachable(f"{req.verb} on {server}: {reply.failure.message}; wait for it or pick another server")
        raise ConfigError(f"{req.verb} on {server}: {reply.failure.message}")

    # --- capacity and placement ----------------------------------------------------------
    def free_mib(self, server: str) -> int:
        return mib_from_frames(self.pool.servers[server].memory.free_frames)

    def candidates(self, need_mib: int, vlans: set, *, exclude=(), planned=None) -> list[str]:
        planned = planned or {}
        out = []
        for s in self.servers.values():
            if (s.name in exclude or Role.VM not in s.roles or s.state is not ServerState.UP
                    or not self.reachable(s.name) or s.name in self.storage_cut):
                continue
            hv = self.pool.servers[s.name]
            if not {v for v in vlans if v is not None} <= vlans_on(hv):
                continue
            if hv.memory.free_frames - frames_from_mib(planned.get(s.name, 0)) >= frames_from_mib(need_mib):
                out.append(s.name)
        return out

    def place(self, guest: Guest, *, exclude=(), planned=None) -> str | None:
        """Preferred servers first, then the most free memory (ties: lowest node number)."""
        planned = planned or {}
        cands = self.candidates(guest.memory_mib, {guest.vlan}, exclude=exclude, planned=planned)
        pref = [c for c in cands if c in guest.preferred]
        pick_from = pref or cands
        if not pick_from:
            return None
        return max(pick_from, key=lambda s: (self.free_mib(s) - planned.get(s, 0), -self.servers[s].node))

    def too_big(self, memory_mib: int) -> None:
        biggest = max((self.free_mib(s) for s in self.servers if self.servers[s].state is ServerState.UP), default=0)
        if memory_mib > biggest:
            raise NoCapacity(f"memory={memory_mib} MiB is more than any server of {self.pool.name} has free "
                             f"(at most {biggest} MiB); lower memory or free a server")

    # --- all-or-nothing operations ------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """Undo what an operation that fails half-way added (guests, templates, ISOs, files, images).

        Only additions are undone: whatever else happened meanwhile (an HA restart while a copy
        ran) stays, and an operation that adds nothing leaves nothing behind.
        """
        before = (set(self.guests), set(self.templates), set(self.isos),
                  {k: (set(r.images), set(r.files)) for k, r in self.repos.items()})
        try:
            yield
        except BaseException as e:
            for d, keys in ((self.guests, before[0]), (self.templates, before[1]), (self.isos, before[2])):
                for k in set(d) - keys:
                    del d[k]
            for k, (images, files) in before[3].items():
                for d, keys in ((self.repos[k].images, images), (self.repos[k].files, files)):
                    for p in set(d) - keys:
                        del d[p]
            if getattr(e, "fail", None):   # the fault that broke the operation stays (a server died)
                self.fail_server(e.fail)
            raise

    def checkpoint(self, step: str) -> None:
        """Fault injection: the master dies at `step` of an operation (the operation rolls back)."""
        if self.inject.get("master-dies") == step:
            del self.inject["master-dies"]
            err = MasterLost(f"the Server Pool Master {self.master} died {step.replace('-', ' ')}; the operation "
                             "was rolled back; retry once a new master is elected")
            err.fail = self.master
            raise err
