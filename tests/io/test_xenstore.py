import pytest

from vmlab.io.xenstore import Xenstore, XenstoreError


@pytest.fixture
def xs():
    s = Xenstore()
    s.introduce_domain(1, "vm1", memory_kib=262144)
    s.introduce_domain(2, "vm2")
    return s


def test_standard_domain_paths_exist_and_relative_paths_mean_home(xs):
    assert xs.read(1, "name") == "vm1" == xs.read(0, "/local/domain/1/name")
    assert xs.read(1, "memory/target") == "262144"
    xs.write(1, "data/greeting", "hello")
    assert xs.read(0, "/local/domain/1/data/greeting") == "hello"
    assert "greeting" in xs.directory(1, "data")


def test_a_domain_cannot_read_or_write_another_domains_home(xs):
    with pytest.raises(XenstoreError, match="EACCES") as e:
        xs.read(2, "/local/domain/1/name")
    assert e.value.name == "EACCES"
    with pytest.raises(XenstoreError, match="EACCES"):
        xs.write(2, "/local/domain/1/data/x", "1")
    with pytest.raises(XenstoreError, match="ENOENT"):
        xs.read(1, "nonexistent")


def test_only_dom0_gives_a_node_to_another_owner(xs):
    xs.write(1, "data/mine", "x")
    with pytest.raises(XenstoreError, match="EPERM"):
        xs.set_perms(1, "data/mine", [(2, "n")])
    xs.set_perms(1, "data/mine", [(1, "r")])           # the owner may change the access others get
    assert xs.read(2, "/local/domain/1/data/mine") == "x"
    with pytest.raises(XenstoreError, match="EACCES"):
        xs.set_perms(2, "/local/domain/1/data/mine", [(2, "b")])
    xs.set_perms(0, "/local/domain/1/data/mine", [(2, "n")])
    assert xs.get_perms(2, "/local/domain/1/data/mine")[0] == (2, "n")


def test_a_watch_fires_once_when_set_then_on_changes_at_or_below_its_path(xs):
    events = []
    xs.watch(0, "/local/domain/1/device", "tok", lambda p, t: events.append(p))
    xs.deliver_watches()
    assert events == ["/local/domain/1/device"]
    xs.write(1, "device/vbd/51712/state", "1")
    xs.write(1, "data/other", "1")                       # a sibling subtree: no event
    xs.deliver_watches()
    assert events[1:] == ["/local/domain/1/device/vbd/51712/state"]
    with pytest.raises(XenstoreError, match="EEXIST"):
        xs.watch(0, "/local/domain/1/device", "tok")
    xs.unwatch(0, "/local/domain/1/device", "tok")
    xs.write(1, "device/x", "1")
    assert xs.deliver_watches() == 0


def test_removing_a_directory_fires_watches_for_its_children(xs):
    xs.write(1, "data/a/b", "1")
    events = []
    xs.watch(0, "/local/domain/1/data/a/b", "t", lambda p, t: events.append(p))
    xs.deliver_watches()
    xs.rm(1, "data/a")
    xs.deliver_watches()
    assert "/local/domain/1/data/a/b" in events[1:]
    assert not xs.exists(0, "/local/domain/1/data/a")


def test_a_transaction_sees_its_own_writes_and_commits_them_together(xs):
    events = []
    xs.watch(0, "/local/domain/1/data", "t", lambda p, t: events.append(p))
    xs.deliver_watches()
    tx = xs.transaction_start(1)
    xs.write(1, "data/ring-ref", "8", tx)
    xs.write(1, "data/event-channel", "3", tx)
    assert xs.read(1, "data/ring-ref", tx) == "8"
    assert not xs.exists(1, "data/ring-ref")              # invisible outside until commit
    xs.deliver_watches()
    assert len(events) == 1
    xs.transaction_end(1, tx)
    assert xs.read(0, "/local/domain/1/data/event-channel") == "3"
    xs.deliver_watches()
    assert len(events) == 3


def test_a_transaction_whose_nodes_changed_meanwhile_fails_with_eagain_and_changes_nothing(xs):
    xs.write(1, "data/counter", "1")
    tx = xs.transaction_start(1)
    n = int(xs.read(1, "data/counter", tx))
    xs.write(1, "data/counter", "5")                      # someone else got there first
    xs.write(1, "data/counter", str(n + 1), tx)
    with pytest.raises(XenstoreError, match="EAGAIN"):
        xs.transaction_end(1, tx)
    assert xs.read(1, "data/counter") == "5"
    tx = xs.transaction_start(1)
    xs.write(1, "data/x", "1", tx)
    xs.transaction_end(1, tx, commit=False)
    assert not xs.exists(1, "data/x")


def test_releasing_a_domain_removes_its_nodes_watches_and_transactions(xs):
    xs.write(1, "data/x", "1")
    xs.write(0, "/local/domain/2/data/from1", "")
    xs.set_perms(0, "/local/domain/2/data/from1", [(1, "n")])
    xs.watch(1, "data", "t")
    xs.transaction_start(1)
    released = []
    xs.watch(0, "@releaseDomain", "r", lambda p, t: released.append(p))
    xs.release_domain(1)
    xs.deliver_watches()
    assert xs.nodes_of(1) == [] and xs.watch_count(1) == 0
    assert not any(t.domid == 1 for t in xs.transactions.values())
    assert "@releaseDomain" in released and xs.read(0, "/local/domain/2/name") == "vm2"


def test_a_watch_does_not_report_nodes_its_domain_cannot_read(xs):
    events = []
    xs.watch(2, "/local/domain/1", "spy", lambda p, t: events.append(p))
    xs.deliver_watches()
    events.clear()
    xs.write(1, "data/secret", "x")                 # vm1's home: vm2 cannot read it
    xs.write(0, "/local/domain/1/data/public", "y")
    xs.set_perms(0, "/local/domain/1/data/public", [(1, "r")])
    xs.deliver_watches()
    assert events == ["/local/domain/1/data/public"]
