"""Xenstore's tree (tools/xenstore/xenstored_core.c): paths, inherited permissions, the node quota."""

import pytest

from vmlab.io.xenstore import Xenstore
from vmlab.io.xenstore_tree import QUOTA_NB_ENTRY_PER_DOMAIN, XENSTORE_ABS_PATH_MAX, XenstoreError, XenstoreTree


@pytest.fixture
def xs():
    s = Xenstore()
    s.introduce_domain(1, "vm1", memory_kib=262144)
    s.introduce_domain(2, "vm2")
    return s


def test_the_store_is_a_tree_with_dom0s_standard_directories(xs):
    assert isinstance(xs, XenstoreTree)
    for p in ("/", "/local", "/local/domain", "/vm", "/tool", "/local/domain/0/name"):
        assert p in xs.nodes
    assert xs.nodes["/local/domain"].children >= {"0", "1", "2"}


def test_permissions_print_as_xenstore_ls_letters():
    assert XenstoreTree.format_perms([(1, "n"), (2, "r")]) == "n1 r2"


def test_a_new_node_copies_its_parents_perms_with_the_creator_as_owner(xs):
    xs.write(0, "/local/domain/1/data/shared", "")
    xs.set_perms(0, "/local/domain/1/data/shared", [(1, "n"), (2, "w")])
    xs.write(2, "/local/domain/1/data/shared/note", "from 2")
    assert xs.get_perms(0, "/local/domain/1/data/shared/note") == [(2, "n"), (2, "w")]


def test_paths_longer_than_3072_bytes_or_with_bad_characters_are_einval(xs):
    with pytest.raises(XenstoreError, match="EINVAL.*3072"):
        xs.write(0, "/" + "a" * XENSTORE_ABS_PATH_MAX, "x")
    for bad in ("/local//domain", "/local/domain/", "/local/dom ain", ""):
        with pytest.raises(XenstoreError, match="EINVAL"):
            xs.write(0, bad, "x")


def test_a_domain_cannot_own_more_than_the_quota_of_nodes(xs):
    have = xs.owned[1]
    for i in range(QUOTA_NB_ENTRY_PER_DOMAIN - have):
        xs.write(1, f"data/n{i}", "")
    with pytest.raises(XenstoreError, match="ENOSPC"):
        xs.write(1, "data/one-too-many", "")
