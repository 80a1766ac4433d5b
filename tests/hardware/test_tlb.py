"""The set-associative LRU TLB."""

import numpy as np
import pytest

from vmlab.errors import ConfigError
from vmlab.hardware.tlb import TLB, simulate_lru


def test_hit_after_insert_and_counters():
    t = TLB(4, 2)
    assert t.lookup(0x5000) is None
    t.insert(0x5000, 77, 3)
    assert t.lookup(0x5123) == (77, 3)
    assert (t.hits, t.misses) == (1, 1)


def test_lru_evicts_the_least_recently_used_way():
    t = TLB(1, 2)
    t.insert(0x1000, 1)
    t.insert(0x2000, 2)
    t.lookup(0x1000)            # 0x1000 is now most recent
    t.insert(0x3000, 3)         # evicts 0x2000
    assert 0x1000 in t and 0x3000 in t and 0x2000 not in t


def test_cr3_load_keeps_global_pages_full_flush_does_not():
    t = TLB(4, 4)
    t.insert(0x1000, 1, global_page=True)
    t.insert(0x2000, 2)
    t.flush(keep_global=True)
    assert 0x1000 in t and 0x2000 not in t
    t.flush(keep_global=False)
    assert len(t) == 0


def test_invlpg_drops_one_page():
    t = TLB(4, 4)
    t.insert(0x1000, 1)
    t.insert(0x2000, 2)
    t.invlpg(0x1fff)
    assert 0x1000 not in t and 0x2000 in t


def test_bad_shape_is_refused():
    with pytest.raises(ConfigError):
        TLB(3, 4)


def test_stream_run_equals_one_lookup_at_a_time():
    rng = np.random.default_rng(1)
    vpns = rng.integers(0, 40, 3000)
    vpns = np.repeat(vpns, rng.integers(1, 4, vpns.size))
    fast = simulate_lru(vpns, sets=4, ways=4)
    t = TLB(4, 4)
    slow = []
    for v in vpns.tolist():
        hit = t.lookup(v << 12)
        slow.append(hit is None)
        if hit is None:
            t.insert(v << 12, v)
    assert fast.tolist() == slow


def test_unmapped_pages_miss_every_time():
    t = TLB(4, 4)
    miss = t.run(np.array([1, 1, 1, 2, 2]), present=np.array([False] * 3 + [True] * 2))
    assert miss.tolist() == [True, True, True, True, False]
    assert (t.hits, t.misses) == (1, 4)


def test_vectorized_run_matches_access_by_access_on_random_streams():
    rng = np.random.default_rng(7)
    for trial in range(30):
        sets, ways = [(1, 1), (1, 4), (4, 2), (16, 4), (2, 8)][trial % 5]
        n = int(rng.integers(1, 400))
        vpns = rng.integers(0, int(rng.integers(1, 60)), n)
        present = rng.random(n) > 0.1
        a, b = TLB(sets, ways), TLB(sets, ways)
        for t in (a, b):                      # same warm state
            for v in (3, 5, 9):
                t.insert(v << 12, v)
        fast = a.run(vpns, present=present)
        slow = b.run_reference(vpns, present=present)
        assert fast.tolist() == slow.tolist(), (sets, ways, trial)
        assert (a.hits, a.misses) == (b.hits, b.misses)
        assert [list(s) for s in a._sets] == [list(s) for s in b._sets]


def test_dense_page_ids_give_the_same_answer():
    rng = np.random.default_rng(11)
    vpns = rng.integers(0, 300, 5000) * 7 + 1_000_000
    a, b = TLB(8, 4), TLB(8, 4)
    a.insert(5 << 12, 1)
    b.insert(5 << 12, 1)
    _, inv = np.unique(vpns, return_inverse=True)
    assert a.run(vpns, page_ids=inv).tolist() == b.run(vpns).tolist()
    assert [list(s) for s in a._sets] == [list(s) for s in b._sets]
