"""xenstored's promises: transactions all or nothing, per-domain quotas, no existence leaks.

Defaults and errnos from tools/xenstore/xenstored_core.c (quota_nb_entry_per_domain,
quota_nb_watch_per_domain, quota_max_transaction, quota_max_entry_size) and
xen/include/public/io/xs_wire.h (XENSTORE_PAYLOAD_MAX).
"""

import pytest

from vmlab.io.xenstore import Xenstore, XenstoreError
from vmlab.io.xenstore_tree import (QUOTA_MAX_ENTRY_SIZE, QUOTA_MAX_TRANSACTION, QUOTA_NB_ENTRY_PER_DOMAIN,
                                    QUOTA_NB_WATCH_PER_DOMAIN, XENSTORE_PAYLOAD_MAX)


def store():
    xs = Xenstore()
    xs.introduce_domain(5, "vm1")
    return xs


def tree(xs):
    return sorted((p, n.value, tuple(n.perms)) for p, n in xs.nodes.items()), dict(xs.owned)


def test_a_commit_that_hits_the_node_quota_midway_applies_nothing():
    """do_transaction_end -> acc_fix_domains: the quota is checked for the whole commit (ENOSPC, nothing applied)."""
    xs = store()
    tx = xs.transaction_start(5)
    have = xs.owned.get(5, 0)
    for i in range(QUOTA_NB_ENTRY_PER_DOMAIN - have + 5):
        xs.write(5, f"data/k{i}", "v", tx)
    before, queued = tree(xs), len(xs.queue)
    with pytest.raises(XenstoreError) as e:
        xs.transaction_end(5, tx)
    assert e.value.name == "ENOSPC"
    assert tree(xs) == before and len(xs.queue) == queued


def test_the_node_quota_is_enospc_as_construct_node_answers():
    xs = store()
    have = xs.owned.get(5, 0)
    for i in range(QUOTA_NB_ENTRY_PER_DOMAIN - have):
        xs.write(5, f"data/k{i}", "v")
    with pytest.raises(XenstoreError) as e:
        xs.write(5, "data/one-more", "v")
    assert e.value.name == "ENOSPC" and e.value.errno_value == 28


def test_the_watch_quota_is_e2big_as_do_watch_answers():
    xs = store()
    for i in range(QUOTA_NB_WATCH_PER_DOMAIN + 1):   # do_watch refuses when the count is already > quota
        xs.watch(5, "data", f"t{i}")
    with pytest.raises(XenstoreError) as e:
        xs.watch(5, "data", "one-more")
    assert e.value.name == "E2BIG"


def test_the_transaction_quota_is_enospc_as_do_transaction_start_answers():
    xs = store()
    for _ in range(QUOTA_MAX_TRANSACTION + 1):
        xs.transaction_start(5)
    with pytest.raises(XenstoreError) as e:
        xs.transaction_start(5)
    assert e.value.name == "ENOSPC"
    xs.transaction_start(0)  # dom0 is not counted


def test_value_size_node_quota_and_payload_limit():
    """write_node: a domU node of >= quota_max_entry_size bytes is ENOSPC; a message over XENSTORE_PAYLOAD_MAX is E2BIG."""
    xs = store()
    before = tree(xs)
    with pytest.raises(XenstoreError) as e:
        xs.write(5, "data/big", "x" * QUOTA_MAX_ENTRY_SIZE)
    assert e.value.name == "ENOSPC"
    with pytest.raises(XenstoreError) as e:
        xs.write(0, "/tool/big", "x" * XENSTORE_PAYLOAD_MAX)
    assert e.value.name == "E2BIG"
    assert tree(xs) == before


def test_mkdir_on_a_node_the_caller_cannot_read_does_not_reveal_it():
    """do_mkdir: get_node(..., XS_PERM_WRITE) -> EACCES for an existing node, as for creating one there."""
    xs = store()
    xs.write(0, "/tool/secret", "s")
    with pytest.raises(XenstoreError) as exists:
        xs.mkdir(5, "/tool/secret")
    with pytest.raises(XenstoreError) as absent:
        xs.mkdir(5, "/tool/nothing-here")
    assert exists.value.name == absent.value.name == "EACCES"
    assert str(exists.value) == str(absent.value)   # word for word: nothing tells the two apart
