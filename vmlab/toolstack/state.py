"""The CLI's state file: the whole server pool in one SQLite database.

Each `vmlab` command is a new process, so the simulated pool lives on disk
between calls. Every command runs inside one SQLite transaction taken with
BEGIN IMMEDIATE: concurrent commands queue instead of interleaving, and a crash
before COMMIT leaves the previous state untouched.

Path: --state, else $VMLAB_STATE, else $XDG_STATE_HOME/vmlab/state.sqlite
(~/.local/state/vmlab/state.sqlite).
"""

from __future__ import annotations

import io
import json
import os
import random
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from vmlab.errors import StateFileError
from vmlab.hardware.host import HostSpec
from vmlab.hypervisor.persist import consistency_problems, load_hypervisor, save_hypervisor
from vmlab.toolstack.pool import Link, ServerPool

FORMAT = "vmlab-state"
FORMAT_VERSION = 1
# How long a command waits for another one's lock (seconds; VMLAB_LOCK_WAIT overrides). Each
# command holds it for well under a second, so this queues hundreds of concurrent calls.
LOCK_WAIT_S = 600.0

# More blobs saved beside the pool, in the same transaction, by layers above this one
# (vmlab.ovm.persist registers 'ovm'): name -> (load(pool, data | None), dump(pool) -> bytes | None).
BLOB_HOOKS: dict[str, tuple] = {}


def default_path() -> Path:
    if os.environ.get("VMLAB_STATE"):
        return Path(os.environ["VMLAB_STATE"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "vmlab" / "state.sqlite"


def default_pool() -> ServerPool:
    pool = ServerPool("pool1")
    pool.add_server(HostSpec(name="ovs1"))
    return pool


def dump_pool(pool: ServerPool) -> bytes:
    meta = {"name": pool.name, "link": {"bandwidth_mbps": pool.link.bandwidth_mbps, "latency_ms": pool.link.latency_ms},
            "servers": []}
    arrays: dict[str, np.ndarray] = {}
    for i, hv in enumerate(pool.servers.values()):
        m, a = save_hypervisor(hv)
        meta["servers"].append(m)
        arrays.update({f"s{i}.{k}": v for k, v in a.items()})
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # already sparse (runs, non-zero entries): compression would only cost time
    return buf.getvalue()


def load_pool(blob: bytes, *, devices: bool = True) -> ServerPool:
    """The pool `dump_pool` wrote. With devices=False the I/O system is not rebuilt
    (read-only commands: `xm list`, `xm info`, ... never touch a ring or a grant)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta.json").tobytes())
    pool = ServerPool(meta["name"], link=Link(**meta["link"]))
    for i, m in enumerate(meta["servers"]):
        prefix = f"s{i}."
        hv = load_hypervisor(m, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        problems = consistency_problems(hv)
        if problems:
            raise _Inconsistent(f"server {hv.host.name}: {problems[0]}")
        pool.servers[hv.host.name] = hv
    if devices:
        from vmlab.toolstack import devices as dev
        for hv in pool.servers.values():  # the I/O system (xenstore, rings, grants) lives in memory: rebuild it
            dev.reconnect(hv)
    return pool


class _Inconsistent(Exception):
    """A state that decodes but cannot be (a domU marked privileged, shared frames, ...)."""


def _locked(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


class StateFile:
    """Open with `with StateFile(path).transaction() as pool: ...`; changes commit on success."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def _connect(self) -> sqlite3.Connection:
        where = f"--state {str(self.path)!r}"
        if self.path.is_dir():
            raise StateFileError(f"{where} is a directory; name a file, e.g. {str(self.path / 'state.sqlite')!r}")
        for p in self.path.parents:
            if p.exists() and not p.is_dir():
                raise StateFileError(f"{where}: {str(p)!r} is a file, not a folder; pick a path under a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StateFileError(f"{where} cannot be opened ({e}); pick a writable path") from None

    def _begin(self, con: sqlite3.Connection, write: bool) -> set[str]:
        """Take the lock (waiting with backoff while other commands hold it); the tables present."""
        wait = float(os.environ.get("VMLAB_LOCK_WAIT", LOCK_WAIT_S))
        start, pause = time.monotonic(), 0.01
        while True:
            try:
                con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.DatabaseError as e:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if not _locked(e):
                    raise self._bad(f"is not a vmlab state database ({e})") from None
            waited = time.monotonic() - start
            if waited >= wait:
                raise StateFileError(f"state file {str(self.path)!r} is still locked by another vmlab command after "
                                     f"{waited:.0f} s; let it finish and try again (the file is fine)")
            time.sleep(min(pause * (1 + random.random()), max(0.0, wait - waited)))
            pause = min(pause * 2, 1.0)

    def _bad(self, why: str) -> StateFileError:
        return StateFileError(f"state file {str(self.path)!r} {why}; move it aside or pass another --state path "
                              "(a new one starts a fresh pool)")

    @contextmanager
    def transaction(self, *, write: bool = True, devices: bool = True) -> Iterator[ServerPool]:
        """The pool, committed back on success if `write`; devices=False skips rebuilding
        the I/O system (a read-only verb such as `xm list` never touches a ring)."""
        con = self._connect()
        try:
            tables = self._begin(con, write)
            if not tables:
                con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                con.execute("CREATE TABLE blobs (name TEXT PRIMARY KEY, data BLOB NOT NULL)")
                con.executemany("INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("version", str(FORMAT_VERSION))])
                pool = default_pool()
            elif tables != {"meta", "blobs"}:
                raise self._bad(f"belongs to another program (tables {sorted(tables)})")
            else:
                meta = dict(con.execute("SELECT key, value FROM meta"))
                if meta.get("format") != FORMAT:
                    raise self._bad(f"is not a vmlab state file (format {meta.get('format')!r})")
                if meta.get("version") != str(FORMAT_VERSION):
                    raise self._bad(f"has version {meta.get('version')}, this vmlab reads {FORMAT_VERSION}")
                row = con.execute("SELECT data FROM blobs WHERE name='pool'").fetchone()
                if row is None:
                    pool = default_pool()
                else:
                    try:
                        pool = load_pool(row[0], devices=devices)
                    except _Inconsistent as e:
                        raise self._bad(f"is inconsistent ({e})") from None
                    except Exception as e:  # any decoding failure means a damaged file
                        raise self._bad(f"is damaged ({type(e).__name__})") from None
            for name, (load, _) in BLOB_HOOKS.items():
                row = con.execute("SELECT data FROM blobs WHERE name=?", (name,)).fetchone()
                load(pool, row[0] if row else None)
            yield pool
            if write:
                con.execute("INSERT OR REPLACE INTO blobs VALUES ('pool', ?)", (dump_pool(pool),))
                for name, (_, dump) in BLOB_HOOKS.items():
                    if (data := dump(pool)) is not None:
                        con.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?)", (name, data))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
