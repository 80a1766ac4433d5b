"""Xenstore's tree: paths, nodes, permissions and quota, with no protocol on top.

The raw operations here do no permission checks; xenstore.py's requests (read,
write, rm, transactions, watches) call them after checking (tools/xenstore/xenstored_core.c).
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field

from vmlab.errors import VmlabError

__all__ = ["XenstoreTree", "XenstoreError", "Node", "domain_path", "XENSTORE_ABS_PATH_MAX",
           "XENSTORE_REL_PATH_MAX", "QUOTA_NB_ENTRY_PER_DOMAIN", "QUOTA_NB_WATCH_PER_DOMAIN",
           "QUOTA_MAX_TRANSACTION", "QUOTA_MAX_ENTRY_SIZE", "XENSTORE_PAYLOAD_MAX"]

XENSTORE_ABS_PATH_MAX = 3072   # xen/include/public/io/xs_wire.h
XENSTORE_REL_PATH_MAX = 2048
# xenstored's default per-domain node quota (tools/xenstore/xenstored_domain.c: quota_nb_entry_per_domain).
QUOTA_NB_ENTRY_PER_DOMAIN = 1000
# The other defaults beside it in tools/xenstore/xenstored_core.c, and what each refusal answers:
QUOTA_NB_WATCH_PER_DOMAIN = 128   # do_watch: domain_watch(conn) > quota -> E2BIG
QUOTA_MAX_TRANSACTION = 10        # do_transaction_start: transaction_started > quota -> ENOSPC
QUOTA_MAX_ENTRY_SIZE = 2048       # write_node: an unprivileged node's record >= 2 KiB -> ENOSPC
XENSTORE_PAYLOAD_MAX = 4096       # xen/include/public/io/xs_wire.h: a longer message is E2BIG
_VALID = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@")
PERM_BITS = {"n": 0, "r": 1, "w": 2, "b": 3}


class XenstoreError(VmlabError, OSError):
    """xenstored answered a request with an error (the name it puts on the ring, e.g. EACCES)."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.errno_value = getattr(_errno, name, 0) if name != "EQUOTA" else 122
        super().__init__(f"xenstore {name}: {detail}")

    def __str__(self) -> str:
        return self.args[0]


def domain_path(domid: int) -> str:
    return f"/local/domain/{domid}"


@dataclass(slots=True)
class Node:
    value: str
    perms: list[tuple[int, str]]   # [(owner, default), (domid, perm), ...]
    children: set[str] = field(default_factory=set)
    gen: int = 0


class XenstoreTree:
    """The node tree and its permission rules; `Xenstore` adds requests, transactions and watches."""

    nodes: dict[str, Node]
    owned: dict[int, int]
    _gen: int

    # --- paths and permissions ---------------------------------------------------------
    def _abs(self, domid: int, path: str) -> str:
        if not isinstance(path, str) or not path:
            raise XenstoreError("EINVAL", f"path {path!r} is empty; give an absolute path like /local/domain/1/name")
        if not path.startswith("/") and not path.startswith("@"):
            if len(path) > XENSTORE_REL_PATH_MAX:
                raise XenstoreError("EINVAL", f"relative path of {len(path)} bytes exceeds {XENSTORE_REL_PATH_MAX}")
            path = f"{domain_path(domid)}/{path}"
        if len(path) > XENSTORE_ABS_PATH_MAX:
            raise XenstoreError("EINVAL", f"path of {len(path)} bytes exceeds XENSTORE_ABS_PATH_MAX={XENSTORE_ABS_PATH_MAX}; shorten it")
        if (path != "/" and path.endswith("/")) or "//" in path or not set(path) <= _VALID:
            raise XenstoreError("EINVAL", f"path {path!r} has an empty component, a trailing '/' or a character "
                                          "outside [A-Za-z0-9-/_@]")
        return path

    @staticmethod
    def _parent(path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    @staticmethod
    def _perm_for(perms: list[tuple[int, str]], domid: int) -> int:
        if domid == 0 or perms[0][0] == domid:
            return 3
        for d, p in perms[1:]:
            if d == domid:
                return PERM_BITS[p]
        return PERM_BITS[perms[0][1]]

    def _check(self, domid: int, path: str, node: Node, want: int) -> None:
        if self._perm_for(node.perms, domid) & want != want:
            what = "read" if want == 1 else "write"
            raise XenstoreError("EACCES", f"domain {domid} may not {what} {path} (owner {node.perms[0][0]}, "
                                          f"perms {self.format_perms(node.perms)}); ask its owner or dom0 to grant it")

    @staticmethod
    def format_perms(perms: list[tuple[int, str]]) -> str:
        return " ".join(f"{p}{d}" for d, p in perms)

    # --- raw tree operations (no permission checks) ----------------------------------
    def _create(self, path: str, creator: int, value: str) -> None:
        """Create path and any missing ancestors, each inheriting its parent's permissions."""
        missing = []
        p = path
        while p not in self.nodes:
            missing.append(p)
            p = self._parent(p)
        for p in reversed(missing):
            parent = self.nodes[self._parent(p)]
            perms = list(parent.perms)
            if creator != 0:
                perms[0] = (creator, perms[0][1])
            self._gen += 1
            self.nodes[p] = Node("", perms, gen=self._gen)
            parent.children.add(p.rsplit("/", 1)[1])
            owner = perms[0][0]
            self.owned[owner] = self.owned.get(owner, 0) + 1
        self._set(path, value)

    def _set(self, path: str, value: str) -> None:
        self._gen += 1
        n = self.nodes[path]
        n.value = value
        n.gen = self._gen

    def _remove(self, path: str) -> list[tuple[str, list]]:
        """Remove a subtree; returns (path, perms it had) for each node, for the watch events."""
        removed = []
        stack = [path]
        while stack:
            p = stack.pop()
            n = self.nodes.pop(p, None)
            if n is None:
                continue
            removed.append((p, n.perms))
            owner = n.perms[0][0]
            self.owned[owner] = self.owned.get(owner, 1) - 1
            stack.extend(f"{p}/{c}" if p != "/" else f"/{c}" for c in n.children)
        parent = self.nodes.get(self._parent(path))
        if parent is not None:
            parent.children.discard(path.rsplit("/", 1)[1])
            self._gen += 1
            parent.gen = self._gen
        return removed

    def _quota(self, domid: int, new_nodes: int) -> None:
        if domid != 0 and self.owned.get(domid, 0) + new_nodes > QUOTA_NB_ENTRY_PER_DOMAIN:
            # construct_node: domain_entry(conn) >= quota_nb_entry_per_domain -> ENOSPC
            raise XenstoreError("ENOSPC", f"domain {domid} would own more than {QUOTA_NB_ENTRY_PER_DOMAIN} nodes; "
                                          "remove some first")

    def _closest(self, path: str) -> tuple[str, Node]:
        p = path
        while p not in self.nodes:
            p = self._parent(p)
        return p, self.nodes[p]
