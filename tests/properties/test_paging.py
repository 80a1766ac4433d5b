"""Invariants of memory virtualization (issue 4)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.mmu import PTE_P, PTE_RW, PTE_US, PTE_A, PTE_D, PTE_G, PTE_PS, PTE_PWT, make_pte
from vmlab.paging import direct
from vmlab.paging.direct import MMUEXT, pt_maddr, pv_state

BASE = 0x4000_0000
REGIONS = 6          # each region: 8 pages, some straddling an L1 boundary
REGION_VA = [BASE + r * (1 << 20) * 3 + (r % 2) * (510 << 12) for r in range(REGIONS)]

op = st.one_of(
    st.tuples(st.just("map"), st.integers(0, REGIONS - 1), st.integers(1, 8), st.booleans()),
    st.tuples(st.just("unmap"), st.integers(0, REGIONS - 1), st.integers(0, 7), st.integers(1, 8)),
    st.tuples(st.just("fork")),
    st.tuples(st.just("switch"), st.integers(0, 3)),
    st.tuples(st.just("exec")),
    st.tuples(st.just("exit"), st.integers(0, 3)),
)


def run(kernel, ops):
    pid = kernel.spawn()
    mapped = {pid: set()}
    for o in ops:
        cur = kernel.current.pid
        if o[0] == "map":
            _, r, n, w = o
            if REGIONS and r not in mapped[cur]:
                kernel.map(cur, REGION_VA[r], n, writable=w)
                mapped[cur].add(r)
        elif o[0] == "unmap":
            _, r, start, n = o
            kernel.unmap(cur, REGION_VA[r] + start * 4096, n)
        elif o[0] == "fork":
            child = kernel.fork(cur)
            mapped[child] = set(mapped[cur])
        elif o[0] == "switch":
            pids = sorted(kernel.procs)
            kernel.switch_to(pids[o[1] % len(pids)])
        elif o[0] == "exec":
            kernel.exec(cur)
            mapped[cur] = set()
        elif o[0] == "exit" and len(kernel.procs) > 1:
            pids = sorted(kernel.procs)
            victim = pids[o[1] % len(pids)]
            kernel.exit(victim)
            mapped.pop(victim)
    return kernel


def probes():
    return [va + k * 4096 for va in REGION_VA for k in (0, 3, 7, 8)] + [0x1000, BASE - 4096]


def outcome(kernel):
    """Per process, per probe address: (pfn or -1, fault) for a read and a write."""
    result = {}
    m2p = np.full(kernel.mem.total_frames + 1, -1, np.int64)
    m2p[kernel.p2m] = np.arange(kernel.p2m.size)
    for pid in sorted(kernel.procs):
        kernel.switch_to(pid)
        for va in probes():
            for write in (False, True):
                mfn, fault = kernel.translate(va, write=write)
                result[(pid, va, write)] = (int(m2p[mfn]), fault)
    return result


VARIANTS = [("pv", "pv", {}), ("shadow", "shadow", {}), ("nested", "nested", {}), ("native", "native", {}),
            ("shadow-oos-cache1", "shadow", {"oos": True, "shadow_cache": 1}),
            ("nested-2M-caches", "nested", {"nested_large_pages": True, "nested_tlb": 16, "pwc": 8})]


@settings(max_examples=300)
@given(st.lists(op, max_size=14))
def test_pv_shadow_and_nested_give_the_same_translations_and_faults(ops):
    outs = {}
    for name, scheme, options in VARIANTS:
        k = run(boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, **options), ops)
        outs[name] = outcome(k)
        if scheme == "pv":
            assert direct.audit(k.hv, k.domid) == []
    first = outs["pv"]
    for name, got in outs.items():
        assert got == first, f"{name} differs from pv"


@settings(max_examples=300)
@given(st.lists(op, max_size=14))
def test_batch_size_changes_the_cost_never_the_tables(ops):
    snaps, costs = [], []
    for b in (1, 32, 1024):
        k = run(boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, batch_size=b), ops)
        m = k.hv.memory
        snaps.append((k.table_snapshot(), m.page_type.tobytes(), m.type_count.tobytes(), m.tot_count.tobytes()))
        costs.append(k.counters()["hypercalls"])
    assert snaps[0] == snaps[1] == snaps[2]
    assert costs[0] >= costs[1] >= costs[2]


def state(hv):
    m = hv.memory
    s = pv_state(hv)
    return (m.page_type.tobytes(), m.type_count.tobytes(), m.tot_count.tobytes(),
            {k: w.tobytes() for k, w in m.words.items() if w.any()}, frozenset(s.pinned), dict(s.cr3))


FLAGS = [0, PTE_P, PTE_P | PTE_RW, PTE_P | PTE_RW | PTE_US, PTE_P | PTE_US | PTE_A | PTE_D,
         PTE_P | PTE_RW | PTE_G, PTE_P | PTE_RW | PTE_PS, PTE_P | PTE_PWT]

hyper = st.one_of(
    st.tuples(st.just("mmu"), st.integers(0, 11), st.integers(0, 3), st.integers(0, 15), st.sampled_from(FLAGS),
              st.sampled_from([0, 0, 0, 2, 1, 3])),
    st.tuples(st.just("pin"), st.integers(1, 4), st.integers(0, 11)),
    st.tuples(st.just("unpin"), st.integers(0, 11)),
    st.tuples(st.just("baseptr"), st.integers(0, 11)),
    st.tuples(st.just("uvm"), st.integers(0, 3), st.integers(0, 15), st.sampled_from(FLAGS)),
    st.tuples(st.just("multi"), st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3), st.integers(0, 15),
                                                   st.sampled_from(FLAGS)), min_size=1, max_size=4)),
)


@settings(max_examples=300)
@given(st.lists(hyper, max_size=25))
def test_no_hypercall_sequence_gives_a_domu_a_forbidden_mapping(calls):
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    hv, domid = k.hv, k.domid
    own = k.p2m[:12].astype(int).tolist()
    foreign = [int(hv.domains[0].p2m[7]), 2, hv.memory.total_frames - 1]   # dom0's, Xen's, a free frame
    targets = own + foreign

    def entry(t, i, f):
        return make_pte(targets[t % len(targets)], f)

    for c in calls:
        before = state(hv)
        if c[0] == "mmu":
            _, table, slot, t, f, cmd = c
            rc = hv.hypercall(domid, "mmu_update", [(pt_maddr(own[table], slot) | cmd, entry(t, slot, f))], 1, {})
        elif c[0] == "pin":
            rc = hv.hypercall(domid, "mmuext_op", [(MMUEXT[f"PIN_L{c[1]}_TABLE"], own[c[2]])], 1, {})
        elif c[0] == "unpin":
            rc = hv.hypercall(domid, "mmuext_op", [(MMUEXT["UNPIN_TABLE"], own[c[1]])], 1, {})
        elif c[0] == "baseptr":
            rc = hv.hypercall(domid, "mmuext_op", [(MMUEXT["NEW_BASEPTR"], own[c[1]])], 1, {})
        elif c[0] == "uvm":
            va = (c[1] << 30) | (c[2] << 12)
            rc = hv.hypercall(domid, "update_va_mapping", va, entry(c[2], 0, c[3]), 0)
        else:
            reqs = [("mmu_update", ([(pt_maddr(own[a], b), entry(t, b, f))], 1, {})) for a, b, t, f in c[1]]
            out = {}
            rc = hv.hypercall(domid, "multicall", reqs, len(reqs), out)
            assert rc == 0 and len(out["results"]) == len(reqs)
        if rc < 0:
            assert state(hv) == before, f"refused {c} ({rc}) changed state"
        assert direct.audit(hv, domid) == []
    # no live L1 maps a page-table frame writable, and nothing foreign is mapped at all
    mem = hv.memory
    for m in own:
        if mem.page_type[m] == 1 and mem.type_count[m] > 0:
            for e in mem.table(m)[mem.table(m) & np.uint64(PTE_P) != 0].tolist():
                f = (e >> 12) & ((1 << 40) - 1)
                assert mem.owner[f] == domid
                assert not (e & PTE_RW) or mem.page_type[f] == 7
