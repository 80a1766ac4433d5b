"""Guest workloads as operation streams: what a guest does, one operation per slot.

A stream is four parallel numpy arrays, so a ten-million-operation workload costs
~210 MB and every path can cost it with array arithmetic instead of a Python loop:

    op     uint8   what happens (an `Op` code)
    arg    int64   COMPUTE: native cycles of plain work; PTE_WRITE / PAGE_FAULT: the
                   page-table slot; CR3_LOAD: the new root; CR8_WRITE: the priority;
                   PORT_IO / MMIO: the port or device register
    value  int64   PTE_WRITE: the entry written (frame << 12 | flags); PORT_IO: 1 = in
    block  int32   the guest *kernel* code block the operation sits in (>= 0), or -1
                   for user code -- binary translation only translates kernel code

The meaning of a stream (its architectural effect: page tables, CR3, CR8, the
interrupt flag, what I/O reads return, the results of computation) is fixed by the
stream itself; `architectural_state` computes it by the plain, native semantics.
Execution paths change what a stream costs, never what it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["Op", "OpStream", "ArchState", "architectural_state", "state_with_ptes", "concat", "FLUSH_POINTS"]


class Op(IntEnum):
    """One guest operation. Values are array codes; names read like the guest's instruction."""

    COMPUTE = 0       # plain instructions: same speed everywhere (arg = native cycles)
    SYSCALL = 1       # user -> kernel -> user (syscall/sysret, int 0x80)
    PTE_WRITE = 2     # a store to a page-table entry (set_pte)
    CR3_LOAD = 3      # mov cr3: switch address space (context switch)
    TLB_FLUSH = 4     # invlpg / local TLB flush
    PAGE_FAULT = 5    # #PF taken by the guest kernel (demand paging, copy-on-write)
    PORT_IO = 6       # in/out to an I/O port
    MMIO = 7          # load/store to a device register
    IRQ_DISABLE = 8   # cli
    IRQ_ENABLE = 9    # sti
    TIMER_IRQ = 10    # a timer interrupt arrives and is handled
    HLT = 11          # idle: halt until the next interrupt
    CPUID = 12        # cpuid
    CALL_RET = 13     # a kernel call/return pair (indirect control flow for BT)
    DIVZERO = 14      # a #DE exception delivered to the guest kernel
    CR8_WRITE = 15    # mov cr8: set the task priority (x86-64 TPR)
    TLB_MISS = 16     # a memory access that misses the TLB and walks the page tables


N_OPS = len(Op)
# Operations that force a PV guest to issue its queued page-table updates first
# (Barham et al. 2003 s3.3.3: before a TLB flush; in the fault handler). CR3 loads
# and TLB flushes are themselves mmuext_op hypercalls ("explicit flushes").
FLUSH_POINTS = (Op.TLB_FLUSH, Op.CR3_LOAD, Op.PAGE_FAULT)


@dataclass(frozen=True, kw_only=True, slots=True)
class OpStream:
    """A guest workload: parallel arrays `op`, `arg`, `value`, `block` (see the module doc)."""

    name: str
    op: np.ndarray
    arg: np.ndarray
    value: np.ndarray
    block: np.ndarray
    description: str = ""

    def __post_init__(self) -> None:
        n = self.op.size
        for field in ("arg", "value", "block"):
            if getattr(self, field).size != n:
                raise ConfigError(f"OpStream {self.name!r}: {field} has {getattr(self, field).size} entries but op has {n}; "
                                  "all four arrays must be the same length")
        if n and int(self.op.max()) >= N_OPS:
            raise ConfigError(f"OpStream {self.name!r}: op code {int(self.op.max())} is not an Op (0..{N_OPS - 1})")

    @classmethod
    def build(cls, name: str, op, arg=None, value=None, block=None, description: str = "") -> "OpStream":
        """Make a stream from sequences, filling missing arrays with 0 (arg, value) and -1 (block)."""
        op = np.asarray(op, dtype=np.uint8)
        n = op.size
        arg = np.zeros(n, np.int64) if arg is None else np.asarray(arg, dtype=np.int64)
        value = np.zeros(n, np.int64) if value is None else np.asarray(value, dtype=np.int64)
        block = np.full(n, -1, np.int32) if block is None else np.asarray(block, dtype=np.int32)
        return cls(name=name, op=op, arg=arg, value=value, block=block, description=description)

    def __len__(self) -> int:
        return int(self.op.size)

    def counts(self) -> np.ndarray:
        """Occurrences of each Op code (length len(Op))."""
        return np.bincount(self.op, minlength=N_OPS)

    def compute_cycles(self) -> int:
        """Native cycles of plain work (the sum of COMPUTE args)."""
        return int(self.arg[self.op == Op.COMPUTE].sum())

    def mix(self) -> dict[str, int]:
        """{op name: count} for the ops that occur, in Op order."""
        c = self.counts()
        return {Op(i).name: int(c[i]) for i in range(N_OPS) if c[i]}


def concat(name: str, streams: list[OpStream], description: str = "") -> OpStream:
    """Run streams back to back as one workload."""
    return OpStream(name=name, op=np.concatenate([s.op for s in streams]),
                    arg=np.concatenate([s.arg for s in streams]),
                    value=np.concatenate([s.value for s in streams]),
                    block=np.concatenate([s.block for s in streams]), description=description)


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchState:
    """What a guest can observe after running a stream: paths must agree on all of it.

    `pte_slots`/`pte_values` are the final page-table contents (sorted by slot);
    `io_digest` folds every value an `in` returned, `compute_digest` the results of
    plain work, in program order.
    """

    pte_slots: np.ndarray
    pte_values: np.ndarray
    cr3: int
    cr8: int
    interrupts_enabled: bool
    io_digest: int
    compute_digest: int

    def same_as(self, other: "ArchState") -> bool:
        return (np.array_equal(self.pte_slots, other.pte_slots) and np.array_equal(self.pte_values, other.pte_values)
                and (self.cr3, self.cr8, self.interrupts_enabled, self.io_digest, self.compute_digest)
                == (other.cr3, other.cr8, other.interrupts_enabled, other.io_digest, other.compute_digest))

    def __eq__(self, other: object) -> bool:  # arrays make the dataclass __eq__ ambiguous
        return isinstance(other, ArchState) and self.same_as(other)

    __hash__ = None  # type: ignore[assignment]


_MASK64 = (1 << 64) - 1


def device_read(port: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """What the (virtual) device returns to the n-th `in` from a port: the same under every path.

    The native device, dom0's backend and the device model all implement the same
    device, so an `in` reads the same value however it was delivered.
    """
    return (port.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + seq.astype(np.uint64)) & np.uint64(0xFFFF)


def fold_digest(values: np.ndarray) -> int:
    """An order-sensitive 64-bit digest of a sequence (position-weighted sum, wraps)."""
    v = values.astype(np.uint64)
    w = np.arange(1, v.size + 1, dtype=np.uint64) * np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        return int((v * w).sum(dtype=np.uint64)) & _MASK64


def final_ptes(slots: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Last value written to each slot, for writes applied in the given order."""
    if slots.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rev_slots = slots[::-1]
    uniq, first_in_rev = np.unique(rev_slots, return_index=True)
    return uniq.astype(np.int64), values[::-1][first_in_rev].astype(np.int64)


def architectural_state(stream: OpStream, *, initial_cr3: int = 0) -> ArchState:
    """The native meaning of a stream: the reference every path's state must equal."""
    op = stream.op
    pte = op == Op.PTE_WRITE
    slots, values = final_ptes(stream.arg[pte], stream.value[pte])
    return state_with_ptes(stream, slots, values, initial_cr3)


def _last(arr: np.ndarray, mask: np.ndarray, default: int) -> int:
    idx = np.flatnonzero(mask)
    return int(arr[idx[-1]]) if idx.size else default


def state_with_ptes(stream: OpStream, slots: np.ndarray, values: np.ndarray, initial_cr3: int = 0) -> ArchState:
    """The architectural state of `stream` with these final page-table entries (from some mechanism)."""
    op = stream.op
    irq = np.flatnonzero((op == Op.IRQ_DISABLE) | (op == Op.IRQ_ENABLE))
    enabled = True if irq.size == 0 else bool(op[irq[-1]] == Op.IRQ_ENABLE)
    io = np.flatnonzero((op == Op.PORT_IO) & (stream.value == 1))
    ports = stream.arg[io]
    # n-th read of each port: rank within port, in program order
    if io.size:
        order = np.argsort(ports, kind="stable")
        sp = ports[order]
        start = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1]
        rank_sorted = np.arange(sp.size) - np.repeat(start, np.diff(np.r_[start, sp.size]))
        seq = np.empty_like(rank_sorted)
        seq[order] = rank_sorted
        reads = device_read(ports, seq)
    else:
        reads = np.zeros(0, np.uint64)
    comp = stream.arg[op == Op.COMPUTE]
    return ArchState(pte_slots=slots, pte_values=values,
                     cr3=_last(stream.arg, op == Op.CR3_LOAD, initial_cr3),
                     cr8=_last(stream.arg, op == Op.CR8_WRITE, 0),
                     interrupts_enabled=enabled, io_digest=fold_digest(reads), compute_digest=fold_digest(comp))
