"""One command table for the xm verbs, shared by the `vmlab` CLI and the `%xm` magic.

Each verb is a function (pool, server, args) -> text. Help lives next to the verb
in `VERBS`. Errors are VmlabError; only the edges (cli.main, the magic) print them.
"""

from __future__ import annotations

import argparse
import ast
import shlex
from typing import Callable

from vmlab.errors import ConfigError, UsageError
from vmlab.toolstack.config import parse_xm_config
from vmlab.toolstack.migrate import migrate
from vmlab.toolstack.pool import ServerPool
from vmlab.toolstack.xm import Toolstack


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting: UsageError for a bad command line,
    _HelpShown(text) for --help, so the edge prints the help exactly once."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")

    def print_help(self, file=None):
        raise _HelpShown(self.format_help())

    def exit(self, status: int = 0, message: str | None = None):
        raise _HelpShown(message or "")


class _HelpShown(Exception):
    """--help was asked for; the exception's text is the help to print."""


def _xm(pool: ServerPool, server: str | None) -> Toolstack:
    return pool.xm(server)


def _create(pool, server, a) -> str:
    xm = _xm(pool, server)
    text = _read(a.config)
    for item in a.vars:  # xm create vm.cfg name=vm2 memory=512: later lines override
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"xm create: {item!r} is not key=value; e.g. xm create vm.cfg memory=512")
        try:
            ast.literal_eval(value)
            text += f"\n{key} = {value}"
        except (ValueError, SyntaxError):
            text += f"\n{key} = {value!r}"
    cfg = parse_xm_config(text, source=a.config)
    dom = xm.create(cfg, paused=a.paused)
    return f'Using config file "{a.config}".\nStarted domain {dom.name} (id={dom.domid})'


def _read(path: str) -> str:
    from vmlab.toolstack.config import read_config_file
    return read_config_file(path)


def _list(pool, server, a) -> str:
    if a.long:  # xm list -l: each domain's SXP record (vmlab/toolstack/sxp.py)
        from vmlab.toolstack.sxp import list_long
        return list_long(_xm(pool, server), a.domain)
    return _xm(pool, server).list_text(a.domain)


def _help(pool, server, a) -> str:
    """xm help [COMMAND]: xm's usage, or one command's (Xen 3 main.py's `help` verb)."""
    if a.command is None:
        return xm_parser().format_help()
    try:
        xm_parser().parse_args([a.command, "--help"])
    except _HelpShown as h:
        return str(h)
    raise AssertionError(a.command)  # pragma: no cover - --help always raises


def _simple(method: str) -> Callable:
    def run(pool, server, a) -> str:
        getattr(_xm(pool, server), method)(a.domain)
        return ""
    return run


def _mem_set(pool, server, a) -> str:
    _xm(pool, server).mem_set(a.domain, a.mem)
    return ""


def _mem_max(pool, server, a) -> str:
    _xm(pool, server).mem_max(a.domain, a.mem)
    return ""


def _vcpu_set(pool, server, a) -> str:
    _xm(pool, server).vcpu_set(a.domain, a.vcpus)
    return ""


def _block_attach(pool, server, a) -> str:
    _xm(pool, server).block_attach(a.domain, f"{a.backend},{a.vdev},{a.mode}")
    return ""


def _network_attach(pool, server, a) -> str:
    _xm(pool, server).network_attach(a.domain, ",".join(a.options))
    return ""


def _save(pool, server, a) -> str:
    _xm(pool, server).save(a.domain, a.file)
    return ""


def _restore(pool, server, a) -> str:
    dom = _xm(pool, server).restore(a.file)
    return f"Restored domain {dom.name} (id={dom.domid})"


def _console(pool, server, a) -> str:
    return _xm(pool, server).console(a.domain)


def _info(pool, server, a) -> str:
    return _xm(pool, server).info()


def _dmesg(pool, server, a) -> str:
    return "\n".join(pool.server(server).xen_console)


def _migrate(pool, server, a) -> str:
    report = migrate(pool, a.domain, a.host, live=a.live, port=a.port, policy=a.policy)
    # Real `xm migrate` is silent on success and logs its rounds to xend.log; vmlab
    # prints that log. A QEMU policy gets QEMU's own HMP `info migrate` text.
    if report.policy.startswith("qemu"):
        return report.info_migrate()
    return "xend.log (rounds):\n" + report.rounds_text() + "\n" + report.summary()


VERBS: dict[str, tuple[Callable, str, Callable[[argparse.ArgumentParser], None]]] = {
    "create": (_create, "Create a domain from an xm config file",
               lambda p: (p.add_argument("config"), p.add_argument("vars", nargs="*", help="key=value overrides"),
                          p.add_argument("-p", "--paused", action="store_true", help="leave the domain paused"))),
    "list": (_list, "List domains (Xen 3 format; -l: their SXP records)",
             lambda p: (p.add_argument("domain", nargs="?"),
                        p.add_argument("-l", "--long", action="store_true", help="the domains' SXP records"))),
    "destroy": (_simple("destroy"), "Terminate a domain immediately", lambda p: p.add_argument("domain")),
    "shutdown": (_simple("shutdown"), "Ask a domain to shut down", lambda p: p.add_argument("domain")),
    "reboot": (_simple("reboot"), "Ask a domain to reboot", lambda p: p.add_argument("domain")),
    "pause": (_simple("pause"), "Pause a domain", lambda p: p.add_argument("domain")),
    "unpause": (_simple("unpause"), "Unpause a paused domain", lambda p: p.add_argument("domain")),
    "mem-set": (_mem_set, "Set a domain's balloon target (MiB, or with t/g/m/k suffix)",
                lambda p: (p.add_argument("domain"), p.add_argument("mem"))),
    "mem-max": (_mem_max, "Set a domain's maximum memory", lambda p: (p.add_argument("domain"), p.add_argument("mem"))),
    "vcpu-set": (_vcpu_set, "Set the number of online vCPUs",
                 lambda p: (p.add_argument("domain"), p.add_argument("vcpus", type=int))),
    "save": (_save, "Save a domain's state to a file and stop it",
             lambda p: (p.add_argument("domain"), p.add_argument("file"))),
    "restore": (_restore, "Restore a domain from a save file", lambda p: p.add_argument("file")),
    "block-attach": (_block_attach, "Attach a disk to a running guest (xm block-attach DOM file:/path xvdb w)",
                     lambda p: (p.add_argument("domain"), p.add_argument("backend"), p.add_argument("vdev"),
                                p.add_argument("mode", nargs="?", default="w"))),
    "network-attach": (_network_attach, "Attach a vif to a running guest (xm network-attach DOM [bridge=xenbr0] [mac=..])",
                       lambda p: (p.add_argument("domain"), p.add_argument("options", nargs="*"))),
    "console": (_console, "Print the domain's console", lambda p: p.add_argument("domain")),
    "info": (_info, "Host information", lambda p: None),
    "dmesg": (_dmesg, "Xen's own boot messages", lambda p: None),
    "migrate": (_migrate, "Migrate a domain to another server of the pool",
                lambda p: (p.add_argument("domain"), p.add_argument("host"),
                           p.add_argument("-l", "--live", action="store_true", help="use live migration"),
                           p.add_argument("-p", "--port", type=int, default=8002, help="relocation port (8002)"),
                           p.add_argument("--policy", default=None,
                                          help="xen3 (default with -l), xen, qemu, qemu+auto-converge, "
                                               "qemu+postcopy, postcopy, stop-and-copy (default without -l)"))),
    "help": (_help, "Display help for xm or one of its commands",
             lambda p: p.add_argument("command", nargs="?", choices=list(VERBS), metavar="COMMAND")),
}


# Verbs that only read: the CLI opens the state file without rewriting it and
# without rebuilding devices (see StateFile.transaction(write=False)).
READONLY: frozenset[str] = frozenset({"list", "console", "info", "dmesg", "help"})


def is_readonly(argv: list[str]) -> bool:
    """Does this xm command line only read the pool? (help and parse errors count as reads)"""
    verbs = [w for w in argv if not w.startswith("-")]
    return not verbs or verbs[0] in READONLY or verbs[0] not in VERBS


def xm_parser(prog: str = "xm") -> Parser:
    p = Parser(prog=prog, description="The Xen 3 xm toolstack, simulated.")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    sub.required = True
    for verb, (_, help_, args) in VERBS.items():
        args(sub.add_parser(verb, help=help_, description=help_))
    return p


def run_xm(pool: ServerPool, argv: list[str] | str, *, server: str | None = None, progress=None) -> str:
    """Run one xm command line against `pool` and return what xm would print.

    `progress(round_record)`, if given, is attached to the pool for this command as its
    `round_observer`: a migration calls it after each round (the CLI prints it to stderr).
    """
    if isinstance(argv, str):
        argv = shlex.split(argv)
    try:
        a = xm_parser().parse_args(argv)
    except _HelpShown as h:
        return str(h) or xm_parser().format_help()
    if progress is None:
        return VERBS[a.verb][0](pool, server, a)
    before, pool.round_observer = pool.round_observer, progress
    try:
        return VERBS[a.verb][0](pool, server, a)
    finally:
        pool.round_observer = before
