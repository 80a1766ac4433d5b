"""The Manager's inventory in the CLI's state file: one more blob ('ovm') beside the pool,
read and written inside the same SQLite transaction (through `state.BLOB_HOOKS`).

The pool blob keeps the servers (their hypervisors, guests' memory, VLAN bridges); this
blob keeps what only the Manager knows: roles, server states, repositories and their
images, templates, guests, HA switches, the event timeline and pending heartbeat timers.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import asdict

import numpy as np

from vmlab.hardware.host import StorageKind
from vmlab.ovm.events import Event
from vmlab.ovm.inventory import Guest, Role, ServerRecord, ServerState, Template
from vmlab.ovm.manager import Manager
from vmlab.ovm.storage import DiskImage, Mount, Repository
from vmlab.toolstack import state

__all__ = ["dump_manager", "load_manager", "manager_of", "BLOB", "KEEP_EVENTS"]

BLOB = "ovm"
KEEP_EVENTS = 2000


def _image(img: DiskImage) -> dict:
    return {"path": img.path, "size_mib": img.size_mib, "seq": img.seq, "mounts": [asdict(m) for m in img.mounts],
            "blocks": base64.b64encode(zlib.compress(img.blocks.tobytes())).decode()}


def _image_back(d: dict) -> DiskImage:
    blocks = np.frombuffer(zlib.decompress(base64.b64decode(d["blocks"])), dtype=np.uint64).copy()
    return DiskImage(path=d["path"], size_mib=d["size_mib"], blocks=blocks, seq=d["seq"],
                     mounts=[Mount(**m) for m in d["mounts"]])


def dump_manager(m: Manager) -> bytes:
    doc = {
        "seed": m.seed, "fencing": m.fencing, "ha_enabled": m.ha_enabled, "now_s": m.now_s, "serial": m.serial,
        "servers": [{"name": s.name, "node": s.node, "roles": sorted(r.value for r in s.roles), "state": s.state.value}
                    for s in m.servers.values()],
        "repos": [{"name": r.name, "mount": r.mount, "kind": r.kind.value, "owner": r.owner, "files": r.files,
                   "images": [_image(i) for i in r.images.values()]} for r in m.repos.values()],
        "templates": [asdict(t) for t in m.templates.values()], "isos": m.isos,
        "guests": [asdict(g) for g in m.guests.values()],
        "events": [asdict(e) for e in m.events[-KEEP_EVENTS:]],
        "queue": m.queue, "partition": None if m.partitioned is None else [sorted(g) for g in m.partitioned],
        "storage_cut": sorted(m.storage_cut), "orphans": [[s, n, e] for (s, n), e in m.orphans.items()],
        "inject": m.inject,
    }
    return zlib.compress(json.dumps(doc).encode())


def load_manager(pool, blob: bytes) -> Manager:
    doc = json.loads(zlib.decompress(blob))
    m = Manager(pool, seed=doc["seed"], fencing=doc["fencing"])
    m.ha_enabled, m.now_s, m.serial = doc["ha_enabled"], doc["now_s"], doc["serial"]
    for s in doc["servers"]:
        if s["name"] in m.servers:
            m.servers[s["name"]] = ServerRecord(name=s["name"], node=s["node"], state=ServerState(s["state"]),
                                                roles=frozenset(Role(r) for r in s["roles"]))
            m.agents[s["name"]].alive = s["state"] not in ("down", "fenced")
    for r in doc["repos"]:
        m.repos[r["name"]] = Repository(name=r["name"], mount=r["mount"], kind=StorageKind(r["kind"]), owner=r["owner"],
                                        files=dict(r["files"]), images={i["path"]: _image_back(i) for i in r["images"]})
    m.templates = {t["name"]: Template(**t) for t in doc["templates"]}
    m.isos = dict(doc["isos"])
    m.guests = {g["name"]: Guest(**{**g, "preferred": tuple(g["preferred"])}) for g in doc["guests"]}
    m.events = [Event(**e) for e in doc["events"]]
    m.queue = [tuple(q) for q in doc["queue"]]
    m.partitioned = None if doc["partition"] is None else [frozenset(g) for g in doc["partition"]]
    m.storage_cut = set(doc["storage_cut"])
    m.orphans = {(s, n): e for s, n, e in doc["orphans"]}
    m.inject = dict(doc["inject"])
    _reconcile(m)
    return m


def _reconcile(m: Manager) -> None:
    """xm may have changed a server since the last `ovm` verb: trust what runs."""
    m.discover()
    for g in list(m.guests.values()):
        if g.state != "running":
            continue
        hv = m.pool.servers.get(g.server)
        if hv is None or not any(d.name == g.name for d in hv.domains.values()):
            if g.epoch is not None and g.repo in m.repos:
                m.image(g).close(g.epoch, m.now_s)
            m.guests[g.name] = g.with_(state="stopped", server=None, epoch=None)


def manager_of(pool) -> Manager:
    """The pool's Manager (created on first use: it adopts the pool's servers and repositories)."""
    m = getattr(pool, "ovm", None)
    if m is None:
        m = pool.ovm = Manager(pool)
    return m


def _load(pool, data: bytes | None) -> None:
    if data is not None:
        pool.ovm = load_manager(pool, data)


def _dump(pool) -> bytes | None:
    m = getattr(pool, "ovm", None)
    return None if m is None else dump_manager(m)


state.BLOB_HOOKS[BLOB] = (_load, _dump)
