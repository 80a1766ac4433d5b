"""Nested paging: the two-dimensional walk and its reference counts."""

import numpy as np

from vmlab.guest.kernel import boot_kernel
from vmlab.paging.explore import reference_order
from vmlab.paging.nested import EPT_VIOLATION, WalkCaches, walk_2d, walk_refs

VA = 0x4000_0000


def kernel(**kw):
    k = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, **kw)
    pid = k.spawn()
    k.map(pid, VA, 600)
    return k


def test_the_formula_gives_4_24_and_19():
    assert walk_refs(4, 0) == 4
    assert walk_refs(4, 4) == 24
    assert walk_refs(4, 3) == 19


def test_a_cold_nested_walk_makes_24_references():
    k = kernel()
    r = walk_2d(k.nested, k.current.root, VA + 5 * 4096)
    assert r.ok and r.refs == 24 == len(r.steps)
    assert r.mfn == k.p2m[k.mappings()[(VA >> 12) + 5]]
    guest_reads = [s for s in r.steps if s[1] == 0]
    assert len(guest_reads) == 4


def test_2mib_nested_pages_make_it_19():
    k = kernel(nested_large_pages=True)
    assert k.nested.levels_for(100) == 3
    r = walk_2d(k.nested, k.current.root, VA)
    assert r.ok and r.refs == 19


def test_native_and_shadow_walks_make_4():
    for scheme in ("native", "pv", "shadow"):
        k = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
        pid = k.spawn()
        k.map(pid, VA, 4)
        k.translate(VA)          # shadow: builds the shadow on the first miss
        before = k.stats["walk_refs"]
        mfn, fault = k.translate(VA + 4096)
        assert fault is None and k.stats["walk_refs"] - before == 4


def test_the_reference_order_lists_24_steps_row_by_row():
    cols = reference_order()
    assert len(cols["order"]) == 24 and cols["order"] == list(range(1, 25))
    assert cols["row"][:5] == ["gL4"] * 5 and cols["col"][:5] == ["nL4", "nL3", "nL2", "nL1", "guest"]
    assert cols["row"][-4:] == ["data"] * 4
    assert len(reference_order(large_nested=True)["order"]) == 19


def test_a_nested_tlb_and_a_page_walk_cache_cut_the_count():
    k = kernel()
    caches = WalkCaches(nested_tlb=64, pwc=32)
    first = walk_2d(k.nested, k.current.root, VA, caches=caches)
    second = walk_2d(k.nested, k.current.root, VA + 4096, caches=caches)
    assert first.refs == 24
    # the PWC skips gL4..gL2, the nested TLB knows the L1 table's frame: 1 guest read + 4 for the data page
    assert second.refs == 5
    only_ntlb = WalkCaches(nested_tlb=64)
    walk_2d(k.nested, k.current.root, VA, caches=only_ntlb)
    assert walk_2d(k.nested, k.current.root, VA + 4096, caches=only_ntlb).refs == 8


def test_unmapped_guest_address_is_a_guest_fault_and_a_missing_gfn_an_ept_violation():
    k = kernel()
    r = walk_2d(k.nested, k.current.root, VA + 700 * 4096)
    assert r.fault == 4 and r.refs == 20
    k.nested.memory.table(k.nested.translate(k.current.root)[2][-1][0])[k.current.root & 511] = 0
    assert walk_2d(k.nested, k.current.root, VA).fault == EPT_VIOLATION


def test_guest_page_table_writes_do_not_exit_under_nested_paging():
    k = kernel()
    k.fork(k.current.pid)
    assert k.stats["exits"] == 0 and k.stats["hypercalls"] == 0 and k.stats["pt_writes"] > 1200


def test_cached_miss_path_matches_walk_2d_one_by_one():
    from vmlab.guest.access import access_stream
    out = []
    for fast in (True, False):
        k = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, nested_tlb=8, pwc=4)
        if not fast:
            def slow(uniq, pages, writes, k=k):
                return sum(walk_2d(k.nested, k.current.root, int(uniq[p]) << 12, write=w, caches=k.caches,
                                   set_ad=False).refs for p, w in zip(pages.tolist(), writes.tolist()))
            k._cached_nested_misses = slow
        pid = k.spawn()
        k.map(pid, VA, 300)
        k.map(pid, VA + (5 << 30), 20, writable=False)
        runs = []
        for seed in range(2):
            vas, w = access_stream("uniform", 1500, 600, seed=seed)
            runs.append(k.access(np.concatenate([vas, VA + (5 << 30) + np.arange(30) * 4096]),
                                 np.concatenate([w, np.ones(30, bool)])))
        c = k.caches
        out.append((runs, c.nested_hits, c.nested_misses, c.pwc_hits, c.pwc_misses, list(c.nested_tlb), list(c.pwc)))
    assert out[0] == out[1]
