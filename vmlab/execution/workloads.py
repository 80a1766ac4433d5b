"""Seeded generators of guest workloads (operation streams).

Nanobenchmarks (after Adams & Agesen 2006 s6): each repeats one sensitive
operation from one kernel code block -- syscall, in, cr8wr, call/ret, pgfault,
divzero, ptemod.

Macro mixes: forkwait (fork + exit + wait in a loop, the paper's process-creation
benchmark), kernel_compile, web, database, compute. A mix is one *unit* of work
(a fork/wait pair, one compiler process, one HTTP request, one transaction, one
slice of number crunching) written out as operations, then tiled `units` times
with seeded jitter in the amount of plain work. The op counts per unit are
ILLUSTRATIVE: chosen to have the shape of the workload (forkwait is page-table
heavy; web is system-call and I/O heavy; compute is nearly all plain work), not
measured from a real kernel.

Page-table slots: process p's k-th page-table entry is slot p * SPAN + k; each
fork makes a fresh child (a new CR3 root), so shadow paging must build new
shadows, and the child's first touch of every PTE just written is a TLB miss.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError
from vmlab.execution.ops import Op, OpStream

__all__ = ["NANOBENCHMARKS", "MACRO_MIXES", "WORKLOADS", "nanobenchmark", "macro", "workload", "stream_of_size",
           "pte_run", "unit_length"]

SPAN = 4096  # page-table slots reserved per process

NANOBENCHMARKS = ("syscall", "in", "cr8wr", "call/ret", "pgfault", "divzero", "ptemod")
MACRO_MIXES = ("forkwait", "kernel_compile", "web", "database", "compute")
WORKLOADS = NANOBENCHMARKS + MACRO_MIXES


class _Unit:
    """Builds one unit of work as Python lists (a few thousand entries), then tiled by numpy."""

    def __init__(self) -> None:
        self.op: list[int] = []
        self.arg: list[int] = []
        self.value: list[int] = []
        self.block: list[int] = []
        self.slot_rel: list[int] = []   # 1: arg is a slot relative to the child process (shifted per unit)
        self.jitter: list[int] = []     # 1: arg is plain work to jitter

    def add(self, op: Op, arg: int = 0, value: int = 0, block: int = -1, *, child: bool = False,
            jitter: bool = False, times: int = 1) -> None:
        for _ in range(times):
            self.op.append(int(op))
            self.arg.append(int(arg))
            self.value.append(int(value))
            self.block.append(int(block))
            self.slot_rel.append(1 if child else 0)
            self.jitter.append(1 if jitter else 0)

    def work(self, cycles: int, block: int = -1) -> None:
        self.add(Op.COMPUTE, cycles, block=block, jitter=True)

    def tile(self, name: str, units: int, rng: np.random.Generator, description: str,
             child_stride: int = SPAN, child_base: int = 2) -> OpStream:
        if units < 1:
            raise ConfigError(f"units={units} must be >= 1")
        n = len(self.op)
        op = np.tile(np.asarray(self.op, np.uint8), units)
        arg = np.tile(np.asarray(self.arg, np.int64), units)
        value = np.tile(np.asarray(self.value, np.int64), units)
        block = np.tile(np.asarray(self.block, np.int32), units)
        unit_ix = np.repeat(np.arange(units, dtype=np.int64), n)
        rel = np.tile(np.asarray(self.slot_rel, bool), units)
        # the child of unit u is process child_base + u: its slots and its CR3 root are fresh
        arg[rel] += (child_base + unit_ix[rel]) * child_stride
        pte = op == Op.PTE_WRITE
        nz = pte & (value != 0)
        value[nz] = ((arg[nz] * 7 + unit_ix[nz]) << 12) | (value[nz] & 0xFFF)  # frame << 12 | flags
        jit = np.tile(np.asarray(self.jitter, bool), units)
        if jit.any():
            k = int(jit.sum())
            arg[jit] = np.maximum(1, (arg[jit] * rng.uniform(0.8, 1.2, k)).astype(np.int64))
        return OpStream(name=name, op=op, arg=arg, value=value, block=block, description=description)


PTE_RW = 0x67  # P | RW | US | A | D: a present, writable user mapping
PTE_RO = 0x25  # P | US | A: write-protected (copy-on-write)


def nanobenchmark(name: str, iterations: int = 10_000, *, seed: int = 0) -> OpStream:
    """One of Adams & Agesen's nanobenchmarks: `iterations` repetitions of one operation.

    Each iteration is the operation plus a few cycles of loop overhead, in kernel
    block 1 (the operation) and 0 (the loop), like the paper's kernel-mode loops.
    """
    rng = np.random.default_rng(seed)
    u = _Unit()
    loop = 0
    if name == "syscall":
        u.add(Op.COMPUTE, 10)              # user-mode loop
        u.add(Op.SYSCALL, block=1)          # a null system call
    elif name == "in":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.PORT_IO, 0x80, 1, block=1)  # in from a port
    elif name == "cr8wr":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.CR8_WRITE, 0, block=1)
    elif name == "call/ret":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.CALL_RET, block=1)
    elif name == "pgfault":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.PAGE_FAULT, 7, block=1)     # a fault the guest kernel handles
        u.add(Op.COMPUTE, 50, block=2)       # its (minimal) handler
    elif name == "divzero":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.DIVZERO, block=1)
        u.add(Op.COMPUTE, 50, block=2)
    elif name == "ptemod":
        u.add(Op.COMPUTE, 10, block=loop)
        u.add(Op.PTE_WRITE, 0, PTE_RW, block=1, child=True)  # rewrite one PTE (a new value each time)
    else:
        raise ConfigError(f"no nanobenchmark named {name!r}; choose from {', '.join(NANOBENCHMARKS)}")
    # nanobenchmarks reuse one slot; child_stride=0 keeps it fixed while values change
    s = u.tile(name, iterations, rng, f"nanobenchmark {name}: {iterations} iterations", child_stride=0, child_base=0)
    return s


def _forkwait_unit() -> _Unit:
    """fork(); child touches its memory and exits; parent waits. 2,280 operations.

    CALIBRATED (ILLUSTRATIVE): the plain work per page the child touches (150
    cycles) was chosen so that, with p4_vtx_2006, BT and HVM land near the
    paper's forkwait slowdowns (~6x and ~18x); the ordering BT < HVM holds for
    any value from 0 to several thousand cycles.
    """
    u = _Unit()
    parent = SPAN  # the parent is process 1: slots SPAN..2*SPAN-1, CR3 root 1
    u.work(3_000)                                        # parent user code
    u.add(Op.SYSCALL, block=10)                          # fork
    u.work(40_000, block=11)                             # dup task, mm, files
    u.add(Op.IRQ_DISABLE, block=11)
    u.add(Op.IRQ_ENABLE, block=11)
    for k in range(400):                                 # copy_page_range: set child PTE, write-protect parent's
        u.add(Op.PTE_WRITE, k, PTE_RO, block=12, child=True)
        u.add(Op.PTE_WRITE, parent + k, PTE_RO | 0x1000, block=13)
        if k % 16 == 0:
            u.add(Op.CALL_RET, block=14)
    u.add(Op.TLB_FLUSH, block=15)                        # parent's PTEs lost write access
    u.add(Op.CR3_LOAD, 0, block=16, child=True)          # switch to the child (a new root)
    u.work(2_000, block=16)
    for k in range(400):                                 # the child touches each of its pages
        u.add(Op.TLB_MISS, k, block=-1, child=True)
        u.work(150)
    for k in range(0, 40):                               # copy-on-write faults in the child
        u.add(Op.PAGE_FAULT, k, block=17, child=True)
        u.work(3_000, block=18)                          # copy the page
        u.add(Op.PTE_WRITE, k, PTE_RW, block=19, child=True)
        u.add(Op.TLB_MISS, k, child=True)
    u.add(Op.SYSCALL, block=20)                          # exit
    u.work(30_000, block=21)
    for k in range(400):                                 # zap_pte_range: clear the child's PTEs
        u.add(Op.PTE_WRITE, k, 0, block=22, child=True)
    u.add(Op.TLB_FLUSH, block=15)
    u.add(Op.CR3_LOAD, 1, block=16)                      # back to the parent
    u.add(Op.TIMER_IRQ, block=23)
    for k in range(20):                                  # copy-on-write faults in the parent
        u.add(Op.PAGE_FAULT, parent + k, block=17)
        u.work(3_000, block=18)
        u.add(Op.PTE_WRITE, parent + k, PTE_RW, block=19)
        u.add(Op.TLB_MISS, parent + k)
    u.add(Op.SYSCALL, block=24)                          # wait4
    u.work(20_000, block=25)
    return u


def _kernel_compile_unit() -> _Unit:
    """One compiler process: fork + exec, demand paging, file system calls, long compute."""
    u = _Unit()
    u.add(Op.SYSCALL, block=10)
    u.work(30_000, block=11)
    for k in range(200):
        u.add(Op.PTE_WRITE, k, PTE_RO, block=12, child=True)
    u.add(Op.CR3_LOAD, 0, block=16, child=True)
    u.add(Op.SYSCALL, block=30)                           # execve
    u.work(60_000, block=31)
    for k in range(200):                                  # exec tears down and rebuilds the mappings
        u.add(Op.PTE_WRITE, k, 0, block=22, child=True)
    for k in range(300):                                  # demand paging of text, data, heap
        u.add(Op.PAGE_FAULT, k, block=17, child=True)
        u.work(1_500, block=18)
        u.add(Op.PTE_WRITE, k, PTE_RW, block=19, child=True)
        u.add(Op.TLB_MISS, k, child=True)
    for k in range(400):                                  # compiling: plain work, TLB misses, file syscalls
        u.work(25_000)
        u.add(Op.TLB_MISS, (k * 37) % 300, child=True)
        u.add(Op.TLB_MISS, (k * 11) % 300, child=True)
        if k % 2 == 0:
            u.add(Op.SYSCALL, block=40 + k % 8)
            u.work(2_000, block=48 + k % 8)
        if k % 40 == 0:
            u.add(Op.MMIO, 0xFEB0, block=60)               # disk request doorbell
            u.add(Op.TIMER_IRQ, block=23)
        if k % 100 == 0:
            u.add(Op.CR3_LOAD, 1, block=16)                # make runs, the compiler is switched out and back
            u.add(Op.CR3_LOAD, 0, block=16, child=True)
    u.add(Op.SYSCALL, block=20)                            # exit
    for k in range(300):
        u.add(Op.PTE_WRITE, k, 0, block=22, child=True)
    u.add(Op.CR3_LOAD, 1, block=16)
    return u


def _web_unit() -> _Unit:
    """Four HTTP requests on a static-file server: system calls, a NIC doorbell and one interrupt.

    The NIC coalesces: one transmit doorbell and one receive interrupt per four
    requests (notification suppression, as virtio and netfront rings do).
    """
    u = _Unit()
    me = SPAN
    for req in range(4):
        # epoll_wait, accept, read, open, fstat, sendfile, write, close
        for i, blk in enumerate((70, 71, 72, 73, 74, 75, 76, 77)):
            u.add(Op.SYSCALL, block=blk)
            u.work(3_000, block=blk + 10)
            u.add(Op.IRQ_DISABLE, block=blk + 10)
            u.add(Op.IRQ_ENABLE, block=blk + 10)
            u.work(2_000)
            if i % 4 == 0:
                u.add(Op.TLB_MISS, me + (req * 8 + i * 13) % 64)
        u.work(8_000)
    u.add(Op.MMIO, 0xFEC0, block=90)                       # NIC transmit doorbell
    u.add(Op.TIMER_IRQ, block=91)                          # NIC receive interrupt
    return u


def _database_unit() -> _Unit:
    """One OLTP transaction: buffer-pool work with many TLB misses, a few system calls, a log write."""
    u = _Unit()
    me = SPAN
    for k in range(200):
        u.work(1_500)
        u.add(Op.TLB_MISS, me + (k * 97) % 2048)
    for blk in (100, 101, 102, 103):                       # pread, pwrite, fsync, futex
        u.add(Op.SYSCALL, block=blk)
        u.work(4_000, block=blk + 10)
    u.add(Op.MMIO, 0xFEB0, block=60)                       # log write reaches the disk
    u.add(Op.TIMER_IRQ, block=23)                          # its completion interrupt
    return u


def _compute_unit() -> _Unit:
    """A slice of number crunching: plain work, a few TLB misses; a timer tick every ~1 ms."""
    u = _Unit()
    me = SPAN
    for k in range(32):
        u.work(100_000)
        u.add(Op.TLB_MISS, me + (k * 131) % 1024)
    u.add(Op.TIMER_IRQ, block=23)
    return u


_MACRO_UNITS = {"forkwait": _forkwait_unit, "kernel_compile": _kernel_compile_unit, "web": _web_unit,
                "database": _database_unit, "compute": _compute_unit}
_DEFAULT_UNITS = {"forkwait": 200, "kernel_compile": 5, "web": 500, "database": 500, "compute": 100}


def macro(name: str, units: int | None = None, *, seed: int = 0) -> OpStream:
    """A macro mix: `units` repetitions of one unit of work (see the module doc)."""
    if name not in _MACRO_UNITS:
        raise ConfigError(f"no macro mix named {name!r}; choose from {', '.join(MACRO_MIXES)}")
    u = _MACRO_UNITS[name]()
    units = _DEFAULT_UNITS[name] if units is None else units
    return u.tile(name, units, np.random.default_rng(seed), f"macro mix {name}: {units} units ({len(u.op)} ops each)")


def workload(name: str, size: int | None = None, *, seed: int = 0) -> OpStream:
    """Any workload by name; `size` is iterations (nanobenchmarks) or units (macro mixes)."""
    if name in NANOBENCHMARKS:
        return nanobenchmark(name, 10_000 if size is None else size, seed=seed)
    return macro(name, size, seed=seed)


def unit_length(name: str) -> int:
    """Operations in one iteration/unit of a workload."""
    if name in NANOBENCHMARKS:
        return len(nanobenchmark(name, 1))
    if name not in _MACRO_UNITS:
        raise ConfigError(f"no workload named {name!r}; choose from {', '.join(WORKLOADS)}")
    return len(_MACRO_UNITS[name]().op)


def stream_of_size(name: str, n_ops: int, *, seed: int = 0) -> OpStream:
    """A workload with (about) n_ops operations: whole units, at least one."""
    units = max(1, round(n_ops / unit_length(name)))
    return workload(name, units, seed=seed)


def pte_run(k: int, *, flushes_after: int = 0, slots: int = 512, seed: int = 0) -> OpStream:
    """k page-table updates from one kernel block (a lazy-MMU run), then `flushes_after` TLB flushes."""
    rng = np.random.default_rng(seed)
    slot = rng.integers(0, slots, k)
    ops = np.r_[np.full(k, Op.PTE_WRITE, np.uint8), np.full(flushes_after, Op.TLB_FLUSH, np.uint8)]
    arg = np.r_[slot, np.zeros(flushes_after, np.int64)]
    value = np.r_[(rng.integers(1, 1 << 20, k) << 12) | PTE_RW, np.zeros(flushes_after, np.int64)]
    block = np.r_[np.full(k, 12, np.int32), np.full(flushes_after, 15, np.int32)]
    return OpStream.build(f"pte_run({k})", ops, arg, value, block)
