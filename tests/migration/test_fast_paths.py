"""The engine's fast paths give exactly what the plain paths give (issue 13, item 6: speed).

Each fast path is checked against the plain computation it replaces, on random inputs:
a ColumnChunk against the pfn array `chunked_send_order` lists for xc_domain_save's permute()
pass; DirtyLog.clean's block-summary scans against a plain full-bitmap scan (SHADOW_OP_CLEAN);
whole migrations with the column views on and off (same report, same target memory).
"""

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmlab.migration.engine.precopy as precopy
from vmlab.migration import (HotCold, MemoryImage, QemuPolicy, SequentialScan, TargetImage, UniformWrites,
                             Xen3Policy, run_migration)
from vmlab.migration.dirty_log import DirtyLog
from vmlab.migration.dirtying import DenseWrites
from vmlab.migration.faults import Fault
from vmlab.migration.link import Link
from vmlab.migration.xen3_order import ColumnChunk, chunked_send_order, column_chunks

orders = st.integers(11, 16)   # p2m_size = 2**order


@settings(max_examples=30)
@given(order=orders, c=st.integers(0, 15), seed=st.integers(0, 2**32 - 1), density=st.floats(0, 1))
def test_a_column_chunk_is_the_chunk_chunked_send_order_lists(order, c, seed, density):
    n = 1 << order
    chunk = n // 16
    assert column_chunks(n, n, chunk)
    expect = chunked_send_order(np.arange(n, dtype=np.int64), n, chunk)[c * chunk:(c + 1) * chunk]
    cc = ColumnChunk(c, n)
    assert np.array_equal(cc.array(), expect) and cc.size == len(cc) == chunk
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    assert np.array_equal(cc.take(values), values[expect])
    # Xen 3 drops the pages PEEK finds re-dirtied: a mask over the chunk's (rows, 64) view
    bitmap = np.zeros(n, dtype=np.bool_)
    lo, hi = sorted(rng.integers(0, n, 2))
    bitmap[lo:hi + 1] = rng.random(hi + 1 - lo) < density
    drop = cc.view(bitmap)
    kept = expect[~bitmap[expect]]
    less = cc.without(drop)
    assert np.array_equal(less.array(), kept) and less.size == kept.size
    assert np.array_equal(less.take(values), values[kept])
    assert np.array_equal(np.asarray(less), kept) and np.array_equal(values[np.asarray(less)], values[kept])


def test_column_chunks_only_for_a_full_power_of_two_pass_in_16_chunks():
    assert column_chunks(1 << 16, 1 << 16, 1 << 12)
    assert not column_chunks((1 << 16) - 1, 1 << 16, 1 << 12)       # holes: a pfn array
    assert not column_chunks(50_000, 50_000, 3125)                  # not a power of two
    assert not column_chunks(1 << 10, 1 << 10, 64)                  # order <= 10: permute() is the identity
    assert not column_chunks(1 << 15, 1 << 15, 1024)                # 32 chunks


def _marks(draw_rng, n, kind):
    if kind == "scattered":   # a few pages in far-apart blocks
        return draw_rng.integers(0, n, int(draw_rng.integers(1, 50)))
    if kind == "span":        # a dense run, as a working set writes
        lo = int(draw_rng.integers(0, n))
        hi = min(n, lo + int(draw_rng.integers(1, 40_000)))
        return np.arange(lo, hi)[draw_rng.random(hi - lo) < 0.5]
    return draw_rng.integers(0, n, int(draw_rng.integers(4097, 20_000)))   # a big burst (span summary)


@settings(max_examples=40)
@given(n=st.integers(1, 300_000), seed=st.integers(0, 2**32 - 1),
       kinds=st.lists(st.sampled_from(["scattered", "span", "burst"]), min_size=1, max_size=6),
       unsent_kind=st.sampled_from(["none", "scattered", "span"]))
def test_clean_with_block_summary_equals_a_full_bitmap_scan(n, seed, kinds, unsent_kind):
    """DirtyLog(n) keeps a summary bit per 4096 pages and scans only dirty blocks (one slice for a dense
    span); a log sharing a Domain's bitmap scans all of it. Both give the same dirty pfns, sorted."""
    rng = np.random.default_rng(seed)
    fast, plain = DirtyLog(n), DirtyLog(n, bitmap=np.zeros(n, dtype=np.bool_))
    for round_kinds in (kinds, kinds[::-1]):      # two rounds: the first clean must leave nothing behind
        for kind in round_kinds:
            pfns = _marks(rng, n, kind).astype(np.int64)
            fast.mark(pfns)
            plain.mark(pfns)
        unsent = np.empty(0, dtype=np.int64) if unsent_kind == "none" else \
            np.unique(_marks(rng, n, unsent_kind).astype(np.int64))
        a, na = fast.clean_merge(unsent)
        b, nb = plain.clean_merge(unsent)
        assert a.dtype == b.dtype == np.int64
        assert np.array_equal(a, b) and na == nb
        assert fast.dirty_count() == plain.dirty_count() == 0
    assert np.array_equal(fast.clean(), np.empty(0, dtype=np.int64))


@dataclass(frozen=True, kw_only=True, slots=True)
class PermutedQemu(QemuPolicy):
    """A QEMU-style sweep in permute() order: its early sync cuts the first pass mid-way (the column
    views hand the rest of the pass over as a pfn array)."""

    permuted_scan: bool = True


def _run(views: bool, n: int, policy, workload, seed: int, verify: bool, fault=None, used=None):
    precopy.COLUMN_VIEWS = views
    try:
        src = MemoryImage(n, used_pages=used)
        dst = TargetImage(n)
        rep = run_migration(src, dst, policy=policy, link=Link(bandwidth_mbps=1000), workload=workload, seed=seed,
                            verify=verify, fault=fault)
    finally:
        precopy.COLUMN_VIEWS = True
    return rep, src.content, dst.content


policies = st.sampled_from([Xen3Policy(), Xen3Policy(max_iters=3), PermutedQemu(max_bandwidth_mib_s=64.0),
                            PermutedQemu(max_bandwidth_mib_s=None, downtime_limit_ms=30.0)])
workloads = st.sampled_from(["uniform", "hotcold", "sequential"])


def _workload(kind: str, n: int, rate: float):
    if kind == "uniform":
        return UniformWrites(rate_pages_s=rate, wws_pages=n // 4)
    if kind == "hotcold":
        return HotCold(rate_pages_s=rate, hot_pages=256, cold_pages=n // 3, offset=n // 8)
    return SequentialScan(rate_pages_s=rate, region_pages=n // 2)


@settings(max_examples=25)
@given(order=st.integers(14, 16), policy=policies, kind=workloads, rate=st.floats(0, 200_000),
       seed=st.integers(0, 2**32 - 1), verify=st.booleans(), used=st.sampled_from([None, 0, 1000]))
def test_column_views_change_nothing_in_a_migration(order, policy, kind, rate, seed, verify, used):
    n = 1 << order
    runs = [_run(views, n, policy, _workload(kind, n, rate), seed, verify, used=used) for views in (True, False)]
    (a, src_a, dst_a), (b, src_b, dst_b) = runs
    assert repr(a) == repr(b)
    assert np.array_equal(src_a, src_b) and np.array_equal(dst_a, dst_b)


@pytest.mark.parametrize("at_s", [0.05, 0.2])
def test_column_views_change_nothing_when_a_fault_cuts_the_first_pass(at_s):
    n = 1 << 15
    wl = lambda: UniformWrites(rate_pages_s=80_000, wws_pages=4096)   # noqa: E731
    a, sa, da = _run(True, n, Xen3Policy(), wl(), 7, True, fault=Fault(kind="link", at_s=at_s))
    b, sb, db = _run(False, n, Xen3Policy(), wl(), 7, True, fault=Fault(kind="link", at_s=at_s))
    assert a.status == "failed" and repr(a) == repr(b)
    assert np.array_equal(sa, sb) and np.array_equal(da, db)


@settings(max_examples=40)
@given(n=st.integers(1, 100_000), rate=st.floats(0, 2e6), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_dense_writes_mark_the_same_bits_as_their_pfns(n, rate, seed, data):
    """A uniform writer that stores more often than it has pages draws one Bernoulli per page and hands
    the mask along (dirtying.DenseWrites); DirtyLog.mark ORs it in. Same bits, same CLEAN, as marking
    the pfns one by one."""
    wws = data.draw(st.integers(1, n))
    offset = data.draw(st.integers(0, n - wws))
    w = UniformWrites(rate_pages_s=rate, wws_pages=wws, offset=offset).writes(np.random.default_rng(seed), 1.0)
    plain_pfns = np.asarray(w).view(np.ndarray)
    assert type(plain_pfns) is np.ndarray and plain_pfns.dtype == np.int64
    if isinstance(w, DenseWrites):
        assert np.array_equal(w, offset + np.flatnonzero(w.dense_mask)) and w.dense_lo == offset
        assert (w[1:] + 0).dense_mask is None   # derived arrays are plain pfns
    fast, plain = MemoryImage(n), MemoryImage(n)
    fast.enable_log()
    plain.enable_log()
    fast.write(w)
    plain.write(plain_pfns)
    assert np.array_equal(fast.log.bitmap, plain.log.bitmap)
    assert np.array_equal(fast.content, plain.content)
    assert np.array_equal(fast.log.clean(), plain.log.clean())


def test_a_busy_uniform_writer_hands_its_mask_along():
    w = UniformWrites(rate_pages_s=1e6, wws_pages=1000, offset=5).writes(np.random.default_rng(1), 1.0)
    assert isinstance(w, DenseWrites) and w.dense_mask.size == 1000
    assert getattr(np.concatenate([w[:3], w[3:]]), "dense_mask", None) is None
