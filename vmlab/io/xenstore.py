"""Xenstore: the small hierarchical database dom0's xenstored keeps for every domain.

Guests reach it over a shared ring (grant ref 1, its own event channel); here the
requests are method calls that take the caller's domid. An error is what
xenstored writes back on the ring ("EACCES", "ENOENT", ...): `XenstoreError`
carries that name and the matching errno.

Permissions (xenstored's rules): a node's first permission entry names its
**owner** and the access everyone else gets by default; later entries grant
access to named domains. Letters: n none, r read, w write, b both. The owner and
dom0 may do anything; only dom0 may give a node to another owner. A node a
domain creates is a copy of its parent's permissions with the creator as owner.

    /local/domain/<id>/name, domid, memory/target, vm, control/shutdown,
                       device/vbd/<devid>/{backend, backend-id, state, ring-ref, event-channel}
                       device/vif/<devid>/{backend, mac, tx-ring-ref, rx-ring-ref, ...}
    /local/domain/0/backend/vbd/<frontid>/<devid>/{frontend, params, state, sectors, ...}

Watches fire once when set, then on every change at or below their path;
transactions see their own writes and fail with EAGAIN at commit if a node they
touched changed meanwhile (per-node generation counts, as modern xenstored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from vmlab.io.xenstore_tree import (PERM_BITS, QUOTA_MAX_ENTRY_SIZE, QUOTA_MAX_TRANSACTION, QUOTA_NB_ENTRY_PER_DOMAIN,
                                    QUOTA_NB_WATCH_PER_DOMAIN, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX,
                                    XENSTORE_REL_PATH_MAX, Node, XenstoreError, XenstoreTree, domain_path)

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["Xenstore", "XenstoreError", "XENSTORE_ABS_PATH_MAX", "XENSTORE_REL_PATH_MAX",
           "QUOTA_NB_ENTRY_PER_DOMAIN", "domain_path"]

@dataclass(slots=True)
class Transaction:
    domid: int
    seen: dict[str, int] = field(default_factory=dict)          # path -> gen at first touch (-1 = absent)
    writes: dict[str, object] = field(default_factory=dict)     # path -> value | None (removed) | ("perms", list)


_MISSING = -1


class Xenstore(XenstoreTree):
    """The store, its watches and transactions (xenstored in dom0)."""

    def __init__(self, hv: "Hypervisor | None" = None) -> None:
        self.hv = hv
        self.nodes: dict[str, Node] = {"/": Node("", [(0, "n")])}
        self.watches: dict[int, list[tuple[str, str, Callable | None]]] = {}
        self.queue: list[tuple[int, str, str, Callable | None]] = []  # pending watch events
        self.transactions: dict[int, Transaction] = {}
        self.owned: dict[int, int] = {0: 1}
        self._gen = 0
        self._next_tx = 1
        for p in ("/local", "/local/domain", "/vm", "/tool"):
            self._create(p, 0, "")
        self._create(domain_path(0), 0, "")
        self._create(domain_path(0) + "/name", 0, "Domain-0")
        self._create(domain_path(0) + "/domid", 0, "0")

    # --- transactions -----------------------------------------------------------------
    def transaction_start(self, domid: int) -> int:
        open_now = sum(1 for t in self.transactions.values() if t.domid == domid)
        if domid != 0 and open_now > QUOTA_MAX_TRANSACTION:  # do_transaction_start, literally '>'
            raise XenstoreError("ENOSPC", f"domain {domid} has {open_now} transactions open (quota "
                                          f"{QUOTA_MAX_TRANSACTION}); end one first")
        tid = self._next_tx
        self._next_tx += 1
        self.transactions[tid] = Transaction(domid)
        return tid

    def _tx(self, domid: int, tx: int) -> Transaction | None:
        if not tx:
            return None
        t = self.transactions.get(tx)
        if t is None or t.domid != domid:
            raise XenstoreError("ENOENT", f"transaction {tx} is not open for domain {domid}; start one first")
        return t

    def _touch(self, t: Transaction, path: str) -> None:
        if path not in t.seen:
            n = self.nodes.get(path)
            t.seen[path] = n.gen if n is not None else _MISSING

    def transaction_end(self, domid: int, tx: int, *, commit: bool = True) -> None:
        """Commit (or abort) a transaction. EAGAIN if a node it touched changed: retry it."""
        t = self._tx(domid, tx)
        del self.transactions[tx]
        if not commit:
            return
        for path, gen in t.seen.items():
            n = self.nodes.get(path)
            if (n.gen if n is not None else _MISSING) != gen:
                raise XenstoreError("EAGAIN", f"{path} changed during transaction {tx}; start again")
        saved = self._save_tree()
        try:  # all or nothing: a refusal mid-commit (a quota) puts every node back
            for path, v in t.writes.items():
                if v is None:
                    if path in self.nodes:
                        self.rm(domid, path)
                elif isinstance(v, tuple):
                    self.set_perms(domid, path, v[1])
                else:
                    self.write(domid, path, v)
        except XenstoreError:
            self._restore_tree(saved)
            raise

    def _save_tree(self) -> tuple:
        return ({p: Node(n.value, list(n.perms), set(n.children), n.gen) for p, n in self.nodes.items()},
                dict(self.owned), self._gen, len(self.queue))

    def _restore_tree(self, saved: tuple) -> None:
        self.nodes, self.owned, self._gen, queued = saved
        del self.queue[queued:]  # the watch events of writes that did not happen

    # --- requests ----------------------------------------------------------------------
    def read(self, domid: int, path: str, tx: int = 0) -> str:
        path = self._abs(domid, path)
        t = self._tx(domid, tx)
        if t is not None:
            self._touch(t, path)
            if path in t.writes:
                v = t.writes[path]
                if v is None:
                    raise XenstoreError("ENOENT", f"{path} was removed in this transaction")
                if not isinstance(v, tuple):
                    return v
        n = self.nodes.get(path)
        if n is None:
            raise XenstoreError("ENOENT", f"{path} does not exist; write it first or check the path")
        self._check(domid, path, n, 1)
        return n.value

    def exists(self, domid: int, path: str) -> bool:
        try:
            self.read(domid, path)
            return True
        except XenstoreError:
            return False

    def write(self, domid: int, path: str, value: str, tx: int = 0) -> None:
        path = self._abs(domid, path)
        if path.startswith("@"):
            raise XenstoreError("EINVAL", f"{path} is a special watch path; it cannot be written")
        value = str(value)
        if len(path) + 1 + len(value.encode()) > XENSTORE_PAYLOAD_MAX:  # xs_wire.h XENSTORE_PAYLOAD_MAX
            raise XenstoreError("E2BIG", f"writing {len(value)} bytes to {path} exceeds the "
                                         f"{XENSTORE_PAYLOAD_MAX}-byte message payload; store less")
        if domid != 0 and len(value.encode()) >= QUOTA_MAX_ENTRY_SIZE:  # write_node's node-size quota
            raise XenstoreError("ENOSPC", f"a {len(value)}-byte value in {path} reaches the "
                                          f"{QUOTA_MAX_ENTRY_SIZE}-byte node quota of a domU; store less")
        t = self._tx(domid, tx)
        n = self.nodes.get(path)
        if n is not None:
            self._check(domid, path, n, 2)
        else:
            ppath, parent = self._closest(path)
            self._check(domid, ppath, parent, 2)
            self._quota(domid, path.count("/") - (ppath.count("/") if ppath != "/" else 0))
        if t is not None:
            self._touch(t, path)
            t.writes[path] = value
            return
        if n is None:
            self._create(path, domid, value)
        else:
            self._set(path, value)
        self._fire(path)

    def mkdir(self, domid: int, path: str, tx: int = 0) -> None:
        apath = self._abs(domid, path)
        n = self.nodes.get(apath)
        if n is not None:
            # xenstored do_mkdir: get_node(..., XS_PERM_WRITE) first, so an existing node the
            # caller may not write is EACCES, as creating it would be. Under a parent the caller
            # may not write either, the refusal is word for word the one an absent node gets
            # there: the answer does not reveal that the node exists.
            if self._perm_for(n.perms, domid) & 2 != 2 and apath != "/":
                ppath = self._parent(apath)
                self._check(domid, ppath, self.nodes[ppath], 2)
            self._check(domid, apath, n, 2)
            return
        self.write(domid, path, "", tx)

    def rm(self, domid: int, path: str, tx: int = 0) -> None:
        path = self._abs(domid, path)
        if path == "/":
            raise XenstoreError("EINVAL", "the root node cannot be removed")
        t = self._tx(domid, tx)
        n = self.nodes.get(path)
        if n is None:
            raise XenstoreError("ENOENT", f"{path} does not exist")
        self._check(domid, path, n, 2)
        if t is not None:
            self._touch(t, path)
            t.writes[path] = None
            return
        for p, perms in self._remove(path):
            self._fire(p, perms=perms)

    def directory(self, domid: int, path: str, tx: int = 0) -> list[str]:
        path = self._abs(domid, path)
        n = self.nodes.get(path)
        if n is None:
            raise XenstoreError("ENOENT", f"{path} does not exist")
        self._check(domid, path, n, 1)
        names = set(n.children)
        t = self._tx(domid, tx)
        if t is not None:
            self._touch(t, path)
            prefix = path.rstrip("/") + "/"
            for p, v in t.writes.items():
                if p.startswith(prefix) and "/" not in p[len(prefix):]:
                    (names.discard if v is None else names.add)(p[len(prefix):])
        return sorted(names, key=lambda s: (len(s), s) if s.isdigit() else (1 << 30, s))

    def get_perms(self, domid: int, path: str) -> list[tuple[int, str]]:
        path = self._abs(domid, path)
        n = self.nodes.get(path)
        if n is None:
            raise XenstoreError("ENOENT", f"{path} does not exist")
        self._check(domid, path, n, 1)
        return list(n.perms)

    def set_perms(self, domid: int, path: str, perms: list[tuple[int, str]], tx: int = 0) -> None:
        path = self._abs(domid, path)
        perms = [(int(d), str(p)) for d, p in perms]
        if not perms or any(p not in PERM_BITS for _, p in perms):
            raise XenstoreError("EINVAL", f"perms {perms} must be [(owner, n|r|w|b), (domid, n|r|w|b), ...]")
        n = self.nodes.get(path)
        if n is None:
            raise XenstoreError("ENOENT", f"{path} does not exist")
        if domid != 0 and n.perms[0][0] != domid:
            raise XenstoreError("EACCES", f"only the owner ({n.perms[0][0]}) or dom0 may change the permissions of {path}")
        if domid != 0 and perms[0][0] != domid:
            raise XenstoreError("EPERM", f"domain {domid} may not give {path} to domain {perms[0][0]}; only dom0 changes owners")
        t = self._tx(domid, tx)
        if t is not None:
            self._touch(t, path)
            t.writes[path] = ("perms", perms)
            return
        old_owner, new_owner = n.perms[0][0], perms[0][0]
        self.owned[old_owner] = self.owned.get(old_owner, 1) - 1
        self.owned[new_owner] = self.owned.get(new_owner, 0) + 1
        n.perms = perms
        self._gen += 1
        n.gen = self._gen
        self._fire(path)

    # --- watches -------------------------------------------------------------------------
    def watch(self, domid: int, path: str, token: str, callback: Callable[[str, str], None] | None = None) -> None:
        """Register a watch; it fires once now (xenstored does), then on each change at or below path."""
        path = self._abs(domid, path)
        lst = self.watches.setdefault(domid, [])
        if any(p == path and tok == token for p, tok, _ in lst):
            raise XenstoreError("EEXIST", f"domain {domid} already watches {path} with token {token!r}")
        if domid != 0 and len(lst) > QUOTA_NB_WATCH_PER_DOMAIN:  # do_watch, literally '>'
            raise XenstoreError("E2BIG", f"domain {domid} has {len(lst)} watches (quota "
                                         f"{QUOTA_NB_WATCH_PER_DOMAIN}); remove one first")
        lst.append((path, token, callback))
        self.queue.append((domid, path, token, callback))

    def unwatch(self, domid: int, path: str, token: str) -> None:
        path = self._abs(domid, path)
        lst = self.watches.get(domid, [])
        for i, (p, tok, _) in enumerate(lst):
            if p == path and tok == token:
                del lst[i]
                self.queue = [e for e in self.queue if not (e[0] == domid and e[2] == token)]
                return
        raise XenstoreError("ENOENT", f"domain {domid} has no watch on {path} with token {token!r}")

    def _fire(self, path: str, *, perms: list | None = None) -> None:
        """Queue an event for every watch at or above `path` whose domain may read the node.

        xenstored does not tell a domain about nodes it cannot read (the event would
        leak their existence); `perms` are a removed node's last permissions.
        """
        if perms is None:
            n = self.nodes.get(path)
            perms = n.perms if n is not None else [(0, "n")]
        for domid, lst in self.watches.items():
            if not self._perm_for(perms, domid) & 1:
                continue
            for wpath, token, cb in lst:
                if path == wpath or path.startswith(wpath.rstrip("/") + "/"):
                    self.queue.append((domid, path, token, cb))

    def fire_special(self, name: str) -> None:
        """@introduceDomain / @releaseDomain: fired by xenstored when the toolstack introduces or a domain dies."""
        for domid, lst in self.watches.items():
            for wpath, token, cb in lst:
                if wpath == name:
                    self.queue.append((domid, name, token, cb))

    def deliver_watches(self, limit: int = 100_000) -> int:
        """Run queued watch callbacks in order (xenbus's xenwatch thread). Returns how many ran."""
        n = 0
        while self.queue and n < limit:
            domid, path, token, cb = self.queue.pop(0)
            n += 1
            if cb is not None and any(t == token for _, t, _ in self.watches.get(domid, [])):
                cb(path, token)
        return n

    # --- domains ---------------------------------------------------------------------------
    def introduce_domain(self, domid: int, name: str, *, memory_kib: int = 0) -> None:
        """What the toolstack writes for a new domain, then @introduceDomain."""
        base = domain_path(domid)
        if base in self.nodes:
            self._remove(base)
        self._create(base, 0, "")
        self.nodes[base].perms = [(domid, "n")]  # the guest owns its home; others (except dom0) see nothing
        self.owned[0] -= 1
        self.owned[domid] = self.owned.get(domid, 0) + 1
        for key, value in (("name", name), ("domid", str(domid)), ("memory/target", str(memory_kib)),
                           ("vm", f"/vm/{name}"), ("control", ""), ("device", ""), ("data", "")):
            self._create(f"{base}/{key}", domid, value)
        self._create(f"/vm/{name}", 0, "")
        self._create(f"/vm/{name}/name", 0, name)
        self.fire_special("@introduceDomain")

    def release_domain(self, domid: int) -> int:
        """The domain is gone: its home, every node it owns, its watches and transactions. Returns nodes removed."""
        removed = 0
        base = domain_path(domid)
        name = self.nodes[f"{base}/name"].value if f"{base}/name" in self.nodes else None
        if base in self.nodes:
            removed += len(self._remove(base))
        if name and f"/vm/{name}" in self.nodes:
            removed += len(self._remove(f"/vm/{name}"))
        for p in [p for p, n in self.nodes.items() if n.perms[0][0] == domid]:
            if p in self.nodes:
                for q, perms in self._remove(p):
                    self._fire(q, perms=perms)
                    removed += 1
        self.watches.pop(domid, None)
        self.queue = [e for e in self.queue if e[0] != domid]
        for tid in [tid for tid, t in self.transactions.items() if t.domid == domid]:
            del self.transactions[tid]
        self.owned.pop(domid, None)
        self.fire_special("@releaseDomain")
        return removed

    def nodes_of(self, domid: int) -> list[str]:
        """Paths owned by domid or under its home directory."""
        base = domain_path(domid)
        return sorted(p for p, n in self.nodes.items() if n.perms[0][0] == domid or p == base or p.startswith(base + "/"))

    def watch_count(self, domid: int) -> int:
        return len(self.watches.get(domid, []))

    def ls(self, path: str = "/", domid: int = 0) -> str:
        """`xenstore-ls`-style dump of a subtree (as dom0 sees it)."""
        lines: list[str] = []

        def walk(p: str, depth: int) -> None:
            n = self.nodes[p]
            name = p.rsplit("/", 1)[1] if p != "/" else ""
            if p != path:
                lines.append(f"{' ' * depth}{name} = \"{n.value}\"")
            for c in self.directory(domid, p):
                walk(f"{p}/{c}" if p != "/" else f"/{c}", depth + (1 if p != path else 0))

        walk(self._abs(domid, path), 0)
        return "\n".join(lines)
