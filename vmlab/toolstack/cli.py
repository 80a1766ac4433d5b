"""`vmlab`: the command line. Every call loads the pool from the state file, runs
one command inside a transaction, and saves it back.

    vmlab xm create guest.cfg          vmlab xm list
    vmlab virt-install -n vm2 -r 512 -p
    vmlab pool show | init | add-server NAME | link
    vmlab sim advance SECONDS | load DOMAIN LOAD | crash DOMAIN
    vmlab labs copy DIR                (handled by vmlab.cli, the installed `vmlab` command)

Errors print one line, `vmlab: error: ...`, never a traceback. The exit code comes from the
error's class (EXIT_CODES): 2 for a malformed command line (UsageError), 1 for any other
refusal, 130 when interrupted; --help and --version exit 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from vmlab.errors import UsageError, VmlabError
from vmlab.hardware.host import Disk, HostSpec, StorageKind, parse_size_mib
from vmlab.hardware.memory import mib_from_frames
from vmlab.hypervisor import constants as C
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


# Most specific class first wins (the error's MRO is walked); VmlabError catches the rest.
EXIT_CODES: Mapping[type[BaseException], int] = {UsageError: 2, VmlabError: 1, KeyboardInterrupt: 130}


def exit_code(exc: BaseException) -> int:
    """The exit code for an error, chosen by its class (never by its message)."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    raise exc


class CliParser(Parser):
    """vmlab's own parsers: errors name the subcommand only (`pool: ...`), as the edge adds `vmlab: error:`."""

    def error(self, message: str):
        where = self.prog.removeprefix("vmlab").strip()
        raise UsageError(f"{where + ': ' if where else ''}{message}; see `{self.prog} --help`")


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print vmlab's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        raise _HelpShown(f"vmlab {version()}\n")


def version() -> str:
    """The installed distribution's version (vmlab.__version__ in a bare checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("vmlab")
    except PackageNotFoundError:
        from vmlab import __version__
        return __version__


class Extension(Protocol):
    """Commands above the toolstack (the Oracle VM layer), plugged in by vmlab.cli: they add their
    parsers and run inside the state transaction. The toolstack never imports them (one-way layers)."""

    def add_parsers(self, sub, sim_sub) -> None: ...
    def handles(self, pool: ServerPool, a: argparse.Namespace) -> bool: ...
    def run(self, pool: ServerPool, a: argparse.Namespace) -> str: ...


def build_parser(extensions: Sequence[Extension] = ()) -> Parser:
    p = CliParser(prog="vmlab", description="vmlab: a Xen-style hypervisor simulator for teaching virtualization.")
    p.add_argument("--version", action=_Version)
    p.add_argument("--state", help="state file (default $VMLAB_STATE or ~/.local/state/vmlab/state.sqlite)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=CliParser)
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
    for ext in extensions:
        ext.add_parsers(sub, ss)
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


Command = Callable[[argparse.Namespace], str]


def run(argv: list[str], commands: Mapping[str, Command] | None = None,
        extensions: Sequence[Extension] = ()) -> str:
    """One command line's output. vmlab.cli adds what sits above the toolstack: `commands` run
    without opening the state file (`labs`), `extensions` inside its transaction (`ovm`)."""
    head, raw_cmd, rest = _split(argv)
    a = build_parser(extensions).parse_args(head + ([raw_cmd] if raw_cmd else []))
    host = None
    if raw_cmd and rest[:1] == ["--host"] and len(rest) > 1:
        host, rest = rest[1], rest[2:]
    if raw_cmd == "xm" and not rest:  # bare `xm`: its usage, as a usage error (exit 2)
        err = UsageError("xm: a VERB is required; `vmlab xm help` lists them")
        err.usage = xm_parser().format_usage()
        raise err
    if raw_cmd == "xm" and rest[0] in ("-h", "--help", "help"):
        return run_xm(None, ["help", *rest[1:]])  # needs no state: help never touches the pool
    if not raw_cmd and a.cmd in (commands or {}):
        return commands[a.cmd](a)
    rw = not ((raw_cmd == "xm" and is_readonly(rest)) or (raw_cmd is None and a.cmd == "pool" and a.pool_cmd == "show"))
    with StateFile(a.state).transaction(write=rw, devices=rw) as pool:
        if raw_cmd == "xm":
            return run_xm(pool, rest, server=host, progress=_print_round)
        if raw_cmd == "virt-install":
            cfg = virt_install_argv(rest)
            dom = pool.xm(host).create(cfg)
            return f"Starting install...\nCreating domain...\nGuest {dom.name} started (id={dom.domid})"
        for ext in extensions:
            if ext.handles(pool, a):
                return ext.run(pool, a)
        if a.cmd == "pool":
            return _pool_cmd(pool, a)
        if a.cmd == "sim":
            return _sim_cmd(pool, a)
    raise AssertionError(a.cmd)


def main(argv: list[str] | None = None, commands: Mapping[str, Command] | None = None,
         extensions: Sequence[Extension] = ()) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        out = run(argv, commands, extensions)
    except _HelpShown as h:
        print(str(h), end="")
        return 0
    except (VmlabError, KeyboardInterrupt) as e:
        if isinstance(e, KeyboardInterrupt):
            print("vmlab: interrupted; the state file is unchanged", file=sys.stderr)
        else:
            print(getattr(e, "usage", ""), end="", file=sys.stderr)
            print(f"vmlab: error: {e}", file=sys.stderr)
        return exit_code(e)
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
