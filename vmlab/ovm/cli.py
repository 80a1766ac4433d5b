"""`vmlab ovm ...`: Oracle VM Manager verbs on the CLI's state file, and the fault verbs
`vmlab sim fail-server | partition | cut-storage | heal` (and `sim advance`, which runs the
pool's heartbeats once a Manager exists).

    vmlab ovm pool create --servers 3 --storage nfs     vmlab ovm pool show | ha on | fencing off
    vmlab ovm server roles ovs2 utility,vm              vmlab ovm server maintenance ovs1 [-n 2]
    vmlab ovm template import EL5 --memory 512          vmlab ovm iso import EL5-DVD
    vmlab ovm vm create web1 --template EL5 --ha        vmlab ovm vm clone web1 web2 | install w1 --iso I
    vmlab ovm vm list | start | stop | delete | migrate | ha | fsck | config
    vmlab ovm vlan add 10 [ovs1 ovs2]                   vmlab ovm repo list | ls OVS     vmlab ovm events
"""

from __future__ import annotations

from vmlab.hardware.host import StorageKind, parse_size_mib
from vmlab.ovm.events import format_events
from vmlab.ovm.inventory import parse_roles
from vmlab.ovm.manager import Manager, server_spec
from vmlab.ovm.persist import manager_of
from vmlab.ovm.views import guests_text, pool_text, repos_text, servers_text
from vmlab.migration.link import Link

__all__ = ["add_parsers", "handles", "run", "SIM_VERBS"]

SIM_VERBS = ("fail-server", "partition", "cut-storage", "heal")


def _onoff(p, name="switch"):
    p.add_argument(name, choices=["on", "off"])


def _pool_parsers(sub) -> None:
    pool = sub.add_parser("pool", help="server pools").add_subparsers(dest="ovm_act", metavar="ACTION")
    pool.required = True
    pool.add_parser("show", help="servers, roles, repositories")
    c = pool.add_parser("create", help="a fresh pool managed by Oracle VM Manager")
    c.add_argument("--servers", type=int, default=3)
    c.add_argument("--storage", default="nfs", choices=[k.value for k in StorageKind])
    c.add_argument("--memory", default="4g")
    c.add_argument("--cpus", type=int, default=4)
    c.add_argument("--local-repo", action="store_true", help="also a local repository on every server")
    c.add_argument("--seed", type=int, default=0)
    _onoff(pool.add_parser("ha", help="the pool's HA switch"))
    _onoff(pool.add_parser("fencing", help="OCFS2 quorum fencing (off: the unsafe teaching case)"))


def _server_parsers(sub) -> None:
    srv = sub.add_parser("server", help="servers of the pool").add_subparsers(dest="ovm_act", metavar="ACTION")
    srv.required = True
    srv.add_parser("list", help="servers, roles, state, free memory, VLANs, guests")
    r = srv.add_parser("roles", help="set roles: master, utility, vm (comma-separated)")
    r.add_argument("name"), r.add_argument("roles")
    mt = srv.add_parser("maintenance", help="evacuate a server by live migration")
    mt.add_argument("name"), mt.add_argument("-n", "--concurrent", type=int, default=2)
    srv.add_parser("activate", help="take a server out of maintenance").add_argument("name")


def _vm_parsers(sub) -> None:
    vm = sub.add_parser("vm", help="guests").add_subparsers(dest="ovm_act", metavar="ACTION")
    vm.required = True
    vm.add_parser("list", help="guests, their state, server, memory, HA and VLAN")
    c = vm.add_parser("create", help="create a guest from a template")
    c.add_argument("name"), c.add_argument("--template", required=True)
    for p in (c, vm.add_parser("clone", help="clone a guest")):
        if p is not c:
            p.add_argument("source"), p.add_argument("name")
        p.add_argument("--memory", type=int), p.add_argument("--vcpus", type=int), p.add_argument("--server")
        p.add_argument("--repo"), p.add_argument("--vlan", type=int), p.add_argument("--ha", action="store_true")
        p.add_argument("--preferred", default="")
    i = vm.add_parser("install", help="HVM install from an ISO in iso_pool")
    i.add_argument("name"), i.add_argument("--iso", required=True), i.add_argument("--memory", type=int, default=1024)
    i.add_argument("--disk", default="8g"), i.add_argument("--server"), i.add_argument("--vlan", type=int)
    for verb, help_ in (("start", "start a stopped guest (placement picks the server)"), ("stop", "power a guest off"),
                        ("delete", "delete a guest and its running_pool directory"),
                        ("fsck", "check the guest's disk image for concurrent writers"), ("config", "print vm.cfg")):
        q = vm.add_parser(verb, help=help_)
        q.add_argument("name")
        if verb == "start":
            q.add_argument("--server")
    mg = vm.add_parser("migrate", help="live-migrate a guest to another server")
    mg.add_argument("name"), mg.add_argument("server")
    h = vm.add_parser("ha", help="the guest's HA switch")
    h.add_argument("name"), _onoff(h), h.add_argument("--preferred", default=None)


def add_parsers(sub, sim_sub) -> None:
    """Register `vmlab ovm ...` under the top-level subparsers and the fault verbs under `sim`."""
    ovm = sub.add_parser("ovm", help="Oracle VM Manager: pools, servers, repositories, templates, guests, HA")
    osub = ovm.add_subparsers(dest="ovm_cmd", metavar="OBJECT", parser_class=type(ovm))
    osub.required = True
    _pool_parsers(osub)
    _server_parsers(osub)
    _vm_parsers(osub)
    t = osub.add_parser("template", help="templates in seed_pool").add_subparsers(dest="ovm_act", metavar="ACTION")
    t.required = True
    t.add_parser("list", help="templates")
    ti = t.add_parser("import", help="import a template into seed_pool")
    ti.add_argument("name"), ti.add_argument("--memory", type=int, default=512), ti.add_argument("--vcpus", type=int, default=1)
    ti.add_argument("--hvm", action="store_true"), ti.add_argument("--image-size", default="4g"), ti.add_argument("--repo", default="OVS")
    iso = osub.add_parser("iso", help="ISOs in iso_pool").add_subparsers(dest="ovm_act", metavar="ACTION")
    iso.required = True
    ii = iso.add_parser("import", help="import an ISO into iso_pool")
    ii.add_argument("name"), ii.add_argument("--size", default="3g")
    repo = osub.add_parser("repo", help="repositories").add_subparsers(dest="ovm_act", metavar="ACTION")
    repo.required = True
    repo.add_parser("list", help="repositories and their storage kinds")
    repo.add_parser("ls", help="a repository's files").add_argument("name", nargs="?", default="OVS")
    vl = osub.add_parser("vlan", help="VLAN bridges").add_subparsers(dest="ovm_act", metavar="ACTION")
    vl.required = True
    va = vl.add_parser("add", help="add VLAN VID (a tagged bridge xenbr0.VID) on servers (default: all)")
    va.add_argument("vlan", type=int), va.add_argument("servers", nargs="*")
    osub.add_parser("events", help="the pool's event timeline").add_argument("--last", type=int, default=40)
    sim_sub.add_parser("fail-server", help="a server dies (Oracle VM layer)").add_argument("name")
    sim_sub.add_parser("partition", help="split the network: groups like ovs1,ovs2 ovs3").add_argument("groups", nargs="+")
    sim_sub.add_parser("cut-storage", help="a server loses its storage path").add_argument("name")
    sim_sub.add_parser("heal", help="end every fault")


def handles(pool, a) -> bool:
    """Is this command ours? (`sim advance` is, once the pool has a Manager.)"""
    if a.cmd == "ovm":
        return True
    return a.cmd == "sim" and (a.sim_cmd in SIM_VERBS or (a.sim_cmd == "advance" and getattr(pool, "ovm", None)))


def run(pool, a) -> str:
    if a.cmd == "sim":
        return _sim(manager_of(pool), a)
    if a.ovm_cmd == "pool" and a.ovm_act == "create":
        return _create_pool(pool, a)
    m = manager_of(pool)
    return globals()["_" + a.ovm_cmd](m, a)


def _create_pool(pool, a) -> str:
    memory = parse_size_mib(a.memory, what="--memory")
    pool.servers.clear()
    pool.link = Link()
    for i in range(a.servers):
        pool.add_server(server_spec(f"ovs{i + 1}", storage=a.storage, memory_mib=memory, cpus=a.cpus,
                                    local_repo=a.local_repo))
    pool.ovm = Manager(pool, seed=a.seed)
    return f"server pool {pool.name} created: {a.servers} servers, /OVS on {a.storage}; master {pool.ovm.master}"


def _sim(m: Manager, a) -> str:
    if a.sim_cmd == "advance":
        m.advance(a.seconds)
    elif a.sim_cmd == "fail-server":
        m.fail_server(a.name)
    elif a.sim_cmd == "cut-storage":
        m.cut_storage(a.name)
    elif a.sim_cmd == "partition":
        groups = [set(g.split(",")) for g in a.groups]
        rest = set(m.servers) - set().union(*groups)
        m.partition(groups + ([rest] if rest else []))
    else:
        m.heal()
    return format_events(m.events[-12:]) if a.sim_cmd != "advance" else ""


def _pool(m: Manager, a) -> str:
    if a.ovm_act == "show":
        return pool_text(m)
    if a.ovm_act == "ha":
        m.set_pool_ha(a.switch == "on")
        return f"HA {a.switch} for pool {m.pool.name}"
    m.fencing = a.switch == "on"
    return f"fencing {a.switch} for pool {m.pool.name}"


def _server(m: Manager, a) -> str:
    if a.ovm_act == "list":
        return servers_text(m)
    if a.ovm_act == "roles":
        m.set_roles(a.name, parse_roles(a.roles))
        return servers_text(m)
    if a.ovm_act == "maintenance":
        return str(m.maintenance(a.name, max_concurrent=a.concurrent))
    m.leave_maintenance(a.name)
    return f"server {a.name} is active again"


def _kw(a) -> dict:
    pref = tuple(p for p in (a.preferred or "").split(",") if p)
    return {"server": a.server, "vlan": a.vlan, "ha": a.ha, "preferred": pref}


def _vm(m: Manager, a) -> str:
    act = a.ovm_act
    if act == "list":
        return guests_text(m)
    if act == "create":
        g, cost = m.create_from_template(a.template, a.name, memory_mib=a.memory, vcpus=a.vcpus,
                                         repo=a.repo or "OVS", **_kw(a))
        return f"{g.name} created on {g.server} ({g.uuid}, {g.mac}); {cost}"
    if act == "clone":
        g, cost = m.clone(a.source, a.name, repo=a.repo, start=True, **_kw(a))
        return f"{g.name} cloned from {a.source}, running on {g.server}; {cost}"
    if act == "install":
        g = m.install_hvm(a.name, a.iso, memory_mib=a.memory, disk_mib=parse_size_mib(a.disk, what="--disk"),
                          server=a.server, vlan=a.vlan)
        return f"{g.name} installing from iso_pool/{a.iso} on {g.server} (HVM, empty {a.disk} System.img)"
    if act == "start":
        return f"{a.name} started on {m.start(a.name, a.server).server}"
    if act == "stop":
        m.stop(a.name)
        return f"{a.name} stopped"
    if act == "delete":
        m.delete(a.name)
        return f"{a.name} deleted with its running_pool directory"
    if act == "migrate":
        rep = m.migrate(a.name, a.server)
        return f"{a.name} migrated to {a.server}: {rep.summary()}"
    if act == "ha":
        pref = None if a.preferred is None else tuple(p for p in a.preferred.split(",") if p)
        g = m.set_guest_ha(a.name, a.switch == "on", preferred=pref)
        return f"HA {a.switch} for {g.name}" + (f", preferred {','.join(g.preferred)}" if g.preferred else "")
    if act == "fsck":
        return str(m.image(m.guest(a.name)).fsck())
    return m.vm_cfg(a.name).rstrip()


def _template(m: Manager, a) -> str:
    if a.ovm_act == "list":
        return "\n".join(f"{t.name:24s} {t.kind:3s} {t.memory_mib:5d} MiB {t.vcpus} vCPU {t.image_mib} MiB image in {t.repo}"
                         for t in m.templates.values()) or "no templates"
    t = m.import_template(a.name, memory_mib=a.memory, vcpus=a.vcpus, kind="hvm" if a.hvm else "pv",
                          image_mib=parse_size_mib(a.image_size, what="--image-size"), repo=a.repo)
    return f"template {t.name} imported into {m.repos[t.repo].mount}/seed_pool/{t.name}/"


def _iso(m: Manager, a) -> str:
    return f"ISO imported: {m.import_iso(a.name, size_mib=parse_size_mib(a.size, what='--size'))}"


def _repo(m: Manager, a) -> str:
    return repos_text(m) if a.ovm_act == "list" else m.repo(a.name).listing()


def _vlan(m: Manager, a) -> str:
    bridges = m.add_vlan(a.vlan, a.servers or None)
    return f"VLAN {a.vlan}: bridge {bridges[0]} on {', '.join(a.servers or m.servers)}"


def _events(m: Manager, a) -> str:
    return format_events(m.events, last=a.last) or "no events"
