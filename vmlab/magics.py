"""The `%xm` IPython magic: xm verbs on the notebook's own simulated pool.

    from vmlab.magics import register_xm_magic
    register_xm_magic(pool)        # a ServerPool, a Toolstack or a Hypervisor
    %xm list
    %xm create guest.cfg

This is an edge like the CLI: a VmlabError prints one line instead of a traceback.
It is the only module of vmlab that imports IPython, and only when called.
"""

from __future__ import annotations

from vmlab.errors import UsageError, VmlabError
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.commands import _HelpShown, run_xm
from vmlab.toolstack.pool import ServerPool
from vmlab.toolstack.xm import Toolstack


def as_pool(target: ServerPool | Toolstack | Hypervisor) -> ServerPool:
    if isinstance(target, ServerPool):
        return target
    hv = target.hv if isinstance(target, Toolstack) else target
    pool = ServerPool("notebook")
    pool.servers[hv.host.name] = hv
    return pool


def xm_magic_function(target: ServerPool | Toolstack | Hypervisor):
    pool = as_pool(target)

    def xm(line: str) -> None:
        try:
            out = run_xm(pool, line)
        except _HelpShown as shown:
            print(str(shown).rstrip())
            return
        except UsageError as e:   # already names the command ("xm mem-set: ..."): one prefix, not two
            print(e)
            return
        except VmlabError as e:
            print(f"xm: error: {e}")
            return
        if out:
            print(out)

    return xm


def register_xm_magic(target: ServerPool | Toolstack | Hypervisor, ip=None) -> None:
    """Bind `%xm` in the running IPython to `target`."""
    if ip is None:
        from IPython import get_ipython
        ip = get_ipython()
    if ip is None:
        raise VmlabError("register_xm_magic needs a running IPython; call it from a notebook")
    ip.register_magic_function(xm_magic_function(target), magic_kind="line", magic_name="xm")
