"""`vmlab`: the command line. Every call loads the pool from the state file, runs
one command inside a transaction, and saves it back.

    vmlab xm create guest.cfg          vmlab xm list
    vmlab virt-install -n vm2 -r 512 -p
    vmlab pool show | init | add-server NAME | link
    vmlab sim advance SECONDS | load DOMAIN LOAD | crash DOMAIN

Errors print one line, `vmlab: error: ...`, and exit 1 (2 for usage), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from vmlab.errors import VmlabError
from vmlab.grading import cli as grading_cli  # issue 12: vmlab grade / vmlab labs (no state file)
from vmlab.hardware.host import Disk, HostSpec, StorageKind, parse_size_mib
from vmlab.hardware.memory import mib_from_frames
from vmlab.hypervisor import constants as C
from vmlab.ovm import cli as ovm_cli
from vmlab.toolstack.commands import VERBS, Parser, _HelpShown, is_readonly, run_xm, xm_parser
from vmlab.toolstack.config import virt_install_argv
from vmlab.toolstack.pool import Link, ServerPool
from vmlab.toolstack.state import StateFile


def _host_spec(name: str, memory: str, cpus: int, storage: str) -> HostSpec:
    kind = StorageKind(storage)
    return HostSpec(name=name, pcpus=cpus, memory_mib=parse_size_mib(memory, what="--memory"),
                    disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                           Disk(name="repo0", storage=kind, mount="/OVS", size_gib=2048)))


def _pool_cmd(pool: ServerPool, a) -> str:
    if a.pool_cmd == "show":
        lines = [f"pool {pool.name}: link {pool.link.bandwidth_mbps:g} Mbit/s, {pool.link.latency_ms:g} ms; master {pool.master}"]
        for name, hv in pool.servers.items():
            repo = hv.host.storage_for("/OVS")
            lines.append(f"  {name:12s} {hv.host.pcpus:3d} CPUs {hv.host.spec.memory_mib:7d} MiB, "
                         f"{mib_from_frames(hv.memory.free_frames):7d} MiB free, {len(hv.domains) - 1} guests, "
                         f"/OVS on {repo.storage.value if repo else '-'}")
        return "\n".join(lines)
    if a.pool_cmd == "init":
        pool.reinit(a.servers, lambda i: _host_spec(f"ovs{i + 1}", a.memory, a.cpus, a.storage))
        return f"pool {pool.name} reset with {a.servers} server(s)"
    if a.pool_cmd == "add-server":
        pool.add_server(_host_spec(a.name, a.memory, a.cpus, a.storage))
        return f"server {a.name} joined pool {pool.name}"
    if a.pool_cmd == "link":
        pool.link = Link(bandwidth_mbps=a.bandwidth_mbps, latency_ms=a.latency_ms)
        return f"link set to {a.bandwidth_mbps:g} Mbit/s, {a.latency_ms:g} ms"
    raise AssertionError(a.pool_cmd)


def _sim_cmd(pool: ServerPool, a) -> str:
    if a.sim_cmd == "advance":
        for hv in pool.servers.values():
            hv.advance(a.seconds)
        return ""
    hv, dom = pool.find(a.domain) if not a.domain.isdigit() else (pool.server(a.host), pool.xm(a.host).lookup(a.domain))
    if a.sim_cmd == "load":
        hv.set_load(dom.domid, a.load)
        return ""
    if a.sim_cmd == "crash":  # the guest kernel panics: SCHEDOP_shutdown(crash) from the guest itself
        hv.hypercall(dom.domid, "sched_op", C.SCHEDOP_shutdown, C.SHUTDOWN_crash)
        pool.xm(hv.host.name).reap()
        return ""
    raise AssertionError(a.sim_cmd)


def build_parser() -> Parser:
    p = Parser(prog="vmlab", description="vmlab: a Xen-style hypervisor simulator for teaching virtualization.")
    p.add_argument("--state", help="state file (default $VMLAB_STATE or ~/.local/state/vmlab/state.sqlite)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    # xm and virt-install take their arguments raw (see _split); listed here for --help.
    sub.add_parser("xm", help="xm verbs: vmlab xm [--host SERVER] VERB ... (create, list, pause, ...)", add_help=False)
    sub.add_parser("virt-install", help="vmlab virt-install [--host SERVER] -n NAME -r MiB [-p|-v] ...", add_help=False)
    pool = sub.add_parser("pool", help="the server pool")
    ps = pool.add_subparsers(dest="pool_cmd", metavar="ACTION", parser_class=Parser)
    ps.required = True
    ps.add_parser("show", help="servers and their free memory")
    for name in ("init", "add-server"):
        q = ps.add_parser(name, help="start a fresh pool" if name == "init" else "add a server")
        if name == "add-server":
            q.add_argument("name")
        else:
            q.add_argument("--servers", type=int, default=1)
        q.add_argument("--memory", default="8g")
        q.add_argument("--cpus", type=int, default=4)
        q.add_argument("--storage", default="nfs", choices=[k.value for k in StorageKind])
    lk = ps.add_parser("link", help="set the migration link")
    lk.add_argument("--bandwidth-mbps", type=float, default=1000.0)
    lk.add_argument("--latency-ms", type=float, default=0.1)
    sim = sub.add_parser("sim", help="drive the simulation: time, guest load, crashes")
    ss = sim.add_subparsers(dest="sim_cmd", metavar="ACTION", parser_class=Parser)
    ss.required = True
    ss.add_parser("advance", help="let simulated time pass").add_argument("seconds", type=float)
    ld = ss.add_parser("load", help="how busy a guest is (0..1)")
    ld.add_argument("domain"), ld.add_argument("load", type=float), ld.add_argument("--host")
    cr = ss.add_parser("crash", help="make a guest kernel crash")
    cr.add_argument("domain"), cr.add_argument("--host")
    ovm_cli.add_parsers(sub, ss)
    grading_cli.register(sub)
    return p


def _print_round(r) -> None:
    """Progress of a long `xm migrate`: one line per round on stderr (stdout keeps the result)."""
    print(f"migrate: round {r.round} {r.phase}: {r.pages_sent} pages sent, {r.pages_dirtied} dirtied, "
          f"{r.remaining_pages} left ({r.start_ms + r.duration_ms:.0f} ms)", file=sys.stderr, flush=True)


def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global args, raw command, its raw args): xm and virt-install take their argv untouched."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--state" else 1
    if i < len(argv) and argv[i] in ("xm", "virt-install"):
        return argv[:i], argv[i], argv[i + 1:]
    return argv, None, []


def run(argv: list[str]) -> str:
    head, raw_cmd, rest = _split(argv)
    a = build_parser().parse_args(head + ([raw_cmd] if raw_cmd else []))
    if a.cmd in ("grade", "labs"):
        return grading_cli.run(a)
    host = None
    if raw_cmd and rest[:1] == ["--host"] and len(rest) > 1:
        host, rest = rest[1], rest[2:]
    if raw_cmd == "xm" and (not rest or rest[0] in ("-h", "--help")):
        return xm_parser().format_help()
    rw = not ((raw_cmd == "xm" and is_readonly(rest)) or (raw_cmd is None and a.cmd == "pool" and a.pool_cmd == "show"))
    with StateFile(a.state).transaction(write=rw, devices=rw) as pool:
        if raw_cmd == "xm":
            return run_xm(pool, rest, server=host, progress=_print_round)
        if raw_cmd == "virt-install":
            cfg = virt_install_argv(rest)
            dom = pool.xm(host).create(cfg)
            return f"Starting install...\nCreating domain...\nGuest {dom.name} started (id={dom.domid})"
        if ovm_cli.handles(pool, a):
            return ovm_cli.run(pool, a)
        if a.cmd == "pool":
            return _pool_cmd(pool, a)
        if a.cmd == "sim":
            return _sim_cmd(pool, a)
    raise AssertionError(a.cmd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        out = run(argv)
    except _HelpShown as h:
        print(str(h) or build_parser().format_help(), end="")
        return 0
    except VmlabError as e:
        print(f"vmlab: error: {e}", file=sys.stderr)
        return 2 if str(e).startswith(("vmlab:", "xm:", "virt-install:")) or " see `" in str(e) else 1
    except KeyboardInterrupt:
        print("vmlab: interrupted; the state file is unchanged", file=sys.stderr)
        return 130
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
