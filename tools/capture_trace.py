#!/usr/bin/env python3
"""Capture page-level memory traces of real programs with valgrind's lackey.

Each workload runs under ``valgrind --tool=lackey --trace-mem=yes`` with ASLR
off (``setarch -R``), its lackey log streamed through a pipe into a numpy
reducer (nothing big touches the disk), and is reduced to:

* an access stream: one record per *run* of consecutive data accesses to the
  same 4 KiB virtual page -- ``time`` (instructions executed before the run's
  first access), ``page`` (virtual page number, address >> 12), ``is_write``
  (any store or modify in the run);
* per-window dirty-page sets: for window i (instructions [i*W, (i+1)*W)), the
  sorted distinct pages stored to, as CSR arrays ``dirty_offsets``/``dirty_pages``.

Instruction fetches count towards time but are not in the stream (code pages
would interleave with every data access and defeat the run merging).

Inputs are generated from a seed, so the same command regenerates the same
files; the machine, libc and program versions still shape the trace and are
written to the metadata.

    python tools/capture_trace.py                 # every workload
    python tools/capture_trace.py gzip sqlite     # some of them
    python tools/capture_trace.py --list

Then run ``python tools/capture_trace.py --registry`` to rehash datasets/ into
datasets/registry.json (also done after every capture).

To add a program: write a ``Workload`` in WORKLOADS (a name, a function that
writes its inputs into a work directory and returns the argv) and run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
TRACES = DATASETS / "traces"

PAGE_SHIFT = 12
WINDOW_INSTRUCTIONS = 100_000  # dirty-set window; loaders can merge k windows
MAX_INSTRUCTIONS = 60_000_000  # safety cap; the workloads below finish well before it
MAX_STREAM_RECORDS = 1_000_000  # keep the first this-many run records of the stream
CHUNK_BYTES = 8 << 20
SEED = 20_061_021  # ASPLOS 2006 met on 21 Oct 2006; any fixed number would do

# --------------------------------------------------------------------------- inputs

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "domain page frame guest hypervisor shadow table migrate dirty grant event channel"
).split()


def _text(path: Path, n_bytes: int, seed: int) -> None:
    """Pseudo-English: Zipf-ish word choice so compressors find real structure."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    weights /= weights.sum()
    n_words = n_bytes // 4
    idx = rng.choice(len(WORDS), size=n_words, p=weights)
    breaks = rng.random(n_words) < 0.08
    out = []
    for i, w in zip(idx, breaks):
        out.append(WORDS[i])
        out.append("\n" if w else " ")
    path.write_bytes("".join(out).encode()[:n_bytes])


def _lines(path: Path, n_lines: int, seed: int) -> None:
    """Random keys for sort: an 8-letter key, a number, and a word."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    keys = letters[rng.integers(0, 26, size=(n_lines, 8))]
    nums = rng.integers(0, 1_000_000, size=n_lines)
    words = rng.integers(0, len(WORDS), size=n_lines)
    rows = [f"{k.tobytes().decode()} {n} {WORDS[w]}\n" for k, n, w in zip(keys, nums, words)]
    path.write_text("".join(rows))


def _sql(path: Path, n_rows: int, seed: int) -> None:
    """An OLTP-flavoured script: bulk insert, index, point and range queries, updates."""
    rng = np.random.default_rng(seed)
    lines = [
        "PRAGMA journal_mode=OFF;",
        "CREATE TABLE vm(id INTEGER PRIMARY KEY, name TEXT, mem_mib INTEGER, host INTEGER);",
        "BEGIN;",
    ]
    mem = rng.integers(128, 8192, size=n_rows)
    host = rng.integers(0, 64, size=n_rows)
    for i in range(n_rows):
        lines.append(f"INSERT INTO vm VALUES({i},'guest{i:06d}',{mem[i]},{host[i]});")
    lines += ["COMMIT;", "CREATE INDEX vm_host ON vm(host);", "BEGIN;"]
    for h in rng.integers(0, 64, size=60):
        lines.append(f"SELECT count(*), sum(mem_mib) FROM vm WHERE host={h};")
    for i in rng.integers(0, n_rows, size=200):
        lines.append(f"UPDATE vm SET mem_mib=mem_mib+1 WHERE id={i};")
    lines += ["COMMIT;", "SELECT host, avg(mem_mib) FROM vm GROUP BY host ORDER BY 2 DESC LIMIT 5;"]
    path.write_text("\n".join(lines) + "\n")


PY_WORKLOAD = """\
# No `import random`: its module-level generator seeds itself from os.urandom, which
# changes the instruction count run to run. A 64-bit LCG (Knuth MMIX constants) instead.
state = %d
def rand(n):
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return (state >> 33) %% n
# a dict-heavy, allocation-heavy job: build an inventory, index it, sort it
vms = [{"name": "guest%%05d" %% i, "mem": 128 + rand(8064), "host": rand(64)} for i in range(1000)]
by_host = {}
for vm in vms:
    by_host.setdefault(vm["host"], []).append(vm)
ranked = sorted(vms, key=lambda v: (v["host"], -v["mem"]))
total = sum(v["mem"] for v in ranked[:500])
print(len(by_host), total)
"""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    name: str
    program: str  # executable looked up on PATH (or absolute)
    version_args: tuple[str, ...]
    description: str
    input_description: str
    prepare: Callable[[Path, str], list[str]]  # (workdir, program path) -> argv
    extra_env: tuple[tuple[str, str], ...] = ()  # on top of the fixed minimal environment


def _gzip(work: Path, exe: str) -> list[str]:
    _text(work / "input.txt", 96 * 1024, SEED)
    return [exe, "-6", "-c", str(work / "input.txt")]


def _xz(work: Path, exe: str) -> list[str]:
    _text(work / "input.txt", 128 * 1024, SEED)
    return [exe, "-1", "-T1", "-c", str(work / "input.txt")]


def _sort(work: Path, exe: str) -> list[str]:
    _lines(work / "input.txt", 20_000, SEED)
    return [exe, "-S", "16M", str(work / "input.txt")]


def _sqlite(work: Path, exe: str) -> list[str]:
    _sql(work / "script.sql", 600, SEED)
    return [exe, str(work / "vm.db"), f".read {work / 'script.sql'}"]


def _python(work: Path, exe: str) -> list[str]:
    (work / "job.py").write_text(PY_WORKLOAD % SEED)
    # -S: no site-packages, so the trace does not depend on what is installed; PYTHONHASHSEED=0
    # (see extra_env) fixes str hashing, else dict layouts and the trace change run to run
    return [exe, "-S", "-B", str(work / "job.py")]


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            name="gzip",
            program="gzip",
            version_args=("--version",),
            description="gzip -6 compressing generated text to stdout",
            input_description=f"96 KiB pseudo-English text, numpy default_rng({SEED}), Zipf-weighted word list",
            prepare=_gzip,
        ),
        Workload(
            name="xz",
            program="xz",
            version_args=("--version",),
            description="xz -1 (LZMA2, 1 MiB dictionary), one thread, compressing generated text",
            input_description=f"128 KiB pseudo-English text, numpy default_rng({SEED}), Zipf-weighted word list",
            prepare=_xz,
        ),
        Workload(
            name="sort",
            program="sort",
            version_args=("--version",),
            description="GNU sort of generated lines (LC_ALL=C, -S 16M buffer)",
            input_description=f"20,000 lines 'key8 number word', numpy default_rng({SEED})",
            prepare=_sort,
        ),
        Workload(
            name="sqlite",
            program="sqlite3",
            version_args=("--version",),
            description="sqlite3 CLI on a new file database: 600-row insert, index, 60 aggregates, 200 updates",
            input_description=f"generated SQL script, numpy default_rng({SEED})",
            prepare=_sqlite,
        ),
        Workload(
            name="python",
            program=sys.executable,
            version_args=("--version",),
            description="CPython (-S -B, PYTHONHASHSEED=0): build 1,000 dicts, group them, sort them",
            input_description=f"inline script (tools/capture_trace.py PY_WORKLOAD), 64-bit LCG seeded with {SEED}",
            prepare=_python,
            extra_env=(("PYTHONHASHSEED", "0"),),
        ),
    ]
}

# --------------------------------------------------------------------------- reducer

_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_MAXDIG = 16


def _parse_chunk(buf: bytes, base_instr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Parse whole lackey lines: returns (time, page, is_write, n_instr, n_data).

    Lackey lines: ``I  04010a70,3`` (fetch), `` L addr,size`` (load), `` S``
    (store), `` M`` (modify = load+store, counted as a write).
    """
    a = np.frombuffer(buf, np.uint8)
    nl = np.flatnonzero(a == 10)
    starts = np.empty(len(nl), np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    last = len(a) - 1
    c0 = a[starts]
    c1 = a[np.minimum(starts + 1, last)]
    is_i = c0 == ord("I")
    is_d = (c0 == 32) & ((c1 == ord("L")) | (c1 == ord("S")) | (c1 == ord("M")))
    icum = np.cumsum(is_i, dtype=np.int64)
    ds = starts[is_d]
    t = base_instr + icum[is_d]
    w = c1[is_d] != ord("L")
    idx = np.minimum(ds[:, None] + 3 + np.arange(_MAXDIG), last)
    digs = _HEX[a[idx]]
    valid = digs != 255
    # digits are contiguous from column 0; the first non-hex (',') ends the address
    length = np.where(valid.all(axis=1), _MAXDIG, np.argmin(valid, axis=1))
    power = length[:, None] - 1 - np.arange(_MAXDIG)
    keep = power >= 0
    vals = np.where(keep, digs, 0).astype(np.uint64)
    shifts = (np.where(keep, power, 0) * 4).astype(np.uint64)
    addr = np.bitwise_or.reduce(vals << shifts, axis=1)
    page = addr >> np.uint64(PAGE_SHIFT)
    return t, page, w, int(icum[-1]) if len(icum) else 0, int(is_d.sum())


def _merge_runs(t: np.ndarray, page: np.ndarray, w: np.ndarray):
    """Collapse consecutive accesses to one page into one record (write = any write)."""
    if len(page) == 0:
        return t, page, w
    start = np.empty(len(page), bool)
    start[0] = True
    start[1:] = page[1:] != page[:-1]
    idx = np.flatnonzero(start)
    return t[idx], page[idx], np.logical_or.reduceat(w, idx)


def _dirty_windows(t: np.ndarray, page: np.ndarray, w: np.ndarray, window: int, n_instr: int):
    n_windows = max(1, -(-n_instr // window))
    wt, wp = t[w], page[w]
    win = (wt // window).astype(np.int64)
    pairs = np.unique(np.stack([win.astype(np.uint64), wp]), axis=1)  # sorted by window, then page
    counts = np.bincount(pairs[0].astype(np.int64), minlength=n_windows)
    offsets = np.zeros(n_windows + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, pairs[1].astype(np.uint64)


def _run_lackey(argv: list[str], env: dict[str, str], cwd: Path, max_instr: int):
    rfd, wfd = os.pipe()
    cmd = ["setarch", platform.machine(), "-R", "valgrind", "--tool=lackey", "--trace-mem=yes",
           f"--log-fd={wfd}", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            pass_fds=(wfd,), env=env, cwd=cwd, start_new_session=True)
    os.close(wfd)
    parts_t, parts_p, parts_w = [], [], []
    n_instr = n_data = 0
    carry = b""
    capped = False
    with os.fdopen(rfd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(CHUNK_BYTES)
            if not chunk:
                break
            buf = carry + chunk
            cut = buf.rfind(b"\n") + 1
            carry, buf = buf[cut:], buf[:cut]
            if not buf:
                continue
            t, p, w, ni, nd = _parse_chunk(buf, n_instr)
            n_instr += ni
            n_data += nd
            t, p, w = _merge_runs(t, p, w)
            parts_t.append(t)
            parts_p.append(p)
            parts_w.append(w)
            if n_instr >= max_instr:
                capped = True
                os.killpg(proc.pid, signal.SIGKILL)
                break
    rc = proc.wait()
    t, p, w = (np.concatenate(x) for x in (parts_t, parts_p, parts_w))
    t, p, w = _merge_runs(t, p, w)  # merge runs split across chunk boundaries
    return t, p, w, n_instr, n_data, capped, rc


def _version(exe: str, args: tuple[str, ...]) -> str:
    out = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def _version_named(exe: str, args: tuple[str, ...]) -> str:
    v = _version(exe, args)
    name = Path(exe).name
    return v if name.split(".")[0].rstrip("0123456789") in v.lower() else f"{name} {v}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def capture(wl: Workload, *, max_instr: int = MAX_INSTRUCTIONS, window: int = WINDOW_INSTRUCTIONS,
            max_records: int = MAX_STREAM_RECORDS) -> dict:
    exe = shutil.which(wl.program) or wl.program
    exe = str(Path(exe).resolve())
    with tempfile.TemporaryDirectory(prefix=f"vmlab-{wl.name}-") as tmp:
        work = Path(tmp)
        argv = wl.prepare(work, exe)
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(work), "TMPDIR": str(work), **dict(wl.extra_env)}
        t0 = time.perf_counter()
        t, p, w, n_instr, n_data, capped, rc = _run_lackey(argv, env, work, max_instr)
        seconds = time.perf_counter() - t0
    offsets, dpages = _dirty_windows(t, p, w, window, n_instr)
    n_runs = len(p)
    truncated = n_runs > max_records
    keep = slice(0, max_records)
    ts, ps, ws = t[keep], p[keep], w[keep]
    TRACES.mkdir(parents=True, exist_ok=True)
    npz = TRACES / f"{wl.name}.npz"
    # time and page are stored as deltas (compress ~3x better); the loader cumsums them back
    np.savez_compressed(
        npz,
        time_delta=np.diff(ts, prepend=0).astype(np.uint32),
        page_delta=np.diff(ps.astype(np.int64), prepend=0),
        is_write=ws.astype(bool),
        dirty_offsets=offsets,
        dirty_pages=dpages,
    )
    uname = platform.uname()
    meta = {
        "name": wl.name,
        "description": wl.description,
        "program": Path(exe).name,
        "program_version": _version_named(exe, wl.version_args),
        "input": wl.input_description,
        "seed": SEED,
        "command": " ".join(
            ["setarch", uname.machine, "-R", "valgrind", "--tool=lackey", "--trace-mem=yes",
             "--log-fd=N", *[a.replace(str(work), "$WORK") for a in argv]]),
        "environment": " ".join(["LC_ALL=C PATH=/usr/bin:/bin HOME=TMPDIR=$WORK (a fresh temp dir)",
                                 *(f"{k}={v}" for k, v in wl.extra_env)]),
        "valgrind_version": _version("valgrind", ("--version",)),
        "machine": uname.machine,
        "cpu": _cpu_model(),
        "kernel": uname.release,
        "libc": " ".join(platform.libc_ver()),
        "captured_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "capture_seconds": round(seconds, 1),
        "exit_status": rc,
        "instructions": n_instr,
        "data_accesses": n_data,
        "instruction_cap": max_instr,
        "capped": capped,
        "reduction": {
            "page_bytes": 1 << PAGE_SHIFT,
            "stream": "data accesses only (instruction fetches advance time but are dropped); "
                      "consecutive accesses to the same page merged into one record whose "
                      "is_write = any store/modify in the run; time = instructions executed "
                      "before the run's first access",
            "stream_records_total": n_runs,
            "stream_records_kept": int(len(ps)),
            "stream_truncated": truncated,
            "window_instructions": window,
            "dirty_windows": int(len(offsets) - 1),
            "dirty_windows_cover": "the whole run (computed before truncating the stream)",
            "distinct_pages_touched": int(len(np.unique(p))),
            "distinct_pages_written": int(len(np.unique(dpages))),
        },
        "arrays": {
            "time_delta": "uint32, instructions since the previous record (cumsum -> time)",
            "page_delta": "int64, change in virtual page number (cumsum -> page)",
            "is_write": "bool",
            "dirty_offsets": "int64[n_windows+1], CSR offsets into dirty_pages",
            "dirty_pages": "uint64, virtual page numbers stored to in each window, sorted",
        },
    }
    npz.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _cpu_model() -> str:
    try:
        m = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
        return m.group(1).strip() if m else platform.processor()
    except OSError:
        return platform.processor()


def write_registry() -> Path:
    """Hash every data file under datasets/ (not README, not the registry itself)."""
    files = sorted(
        p for p in DATASETS.rglob("*")
        if p.is_file() and p.name not in ("registry.json", "README.md") and "__pycache__" not in p.parts
    )
    reg = {p.relative_to(DATASETS).as_posix(): sha256(p) for p in files}
    out = DATASETS / "registry.json"
    out.write_text(json.dumps({"algorithm": "sha256", "files": reg}, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", help="names to capture (default: all)")
    ap.add_argument("--list", action="store_true", help="list workloads and exit")
    ap.add_argument("--registry", action="store_true", help="only rewrite datasets/registry.json")
    ap.add_argument("--max-instructions", type=int, default=MAX_INSTRUCTIONS)
    ap.add_argument("--window", type=int, default=WINDOW_INSTRUCTIONS, help="dirty-set window, instructions")
    args = ap.parse_args(argv)
    if args.list:
        for w in WORKLOADS.values():
            print(f"{w.name:8s} {w.description}")
        return 0
    if not args.registry:
        for name in args.workloads or list(WORKLOADS):
            if name not in WORKLOADS:
                ap.error(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
            m = capture(WORKLOADS[name], max_instr=args.max_instructions, window=args.window)
            r = m["reduction"]
            print(f"{name:8s} {m['capture_seconds']:6.1f} s  {m['instructions']:>11,} instr  "
                  f"{r['stream_records_total']:>9,} runs (kept {r['stream_records_kept']:,})  "
                  f"{r['dirty_windows']} windows  {r['distinct_pages_written']} pages written  "
                  f"exit {m['exit_status']}{' CAPPED' if m['capped'] else ''}")
    print(write_registry().relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
