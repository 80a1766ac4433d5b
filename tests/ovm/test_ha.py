"""HA: detection by missed heartbeats (O2CB timeouts), fencing, placement, re-election, the partition case."""

import pytest

from ovm_helpers import small_pool
from vmlab.ovm import ServerState
from vmlab.ovm import constants as K


def deploy(m, names=("a", "b", "c"), server="ovs2", ha=True, **kw):
    for n in names:
        m.create_from_template("EL5", n, server=server, ha=ha, **kw)
    m.set_pool_ha(True)


def kinds(m):
    return [e.kind for e in m.events]


def test_timeouts_follow_o2cb_defaults():
    # fs/ocfs2/cluster/heartbeat.h: O2HB_MAX_WRITE_TIMEOUT_MS = O2HB_REGION_TIMEOUT_MS * (dead_threshold - 1)
    assert K.DISK_HB_TIMEOUT_S == 2.0 * (31 - 1) == 60.0
    assert K.NET_IDLE_TIMEOUT_S == 30.0 and K.NET_KEEPALIVE_S == 2.0   # /etc/default/o2cb


def test_failed_server_detected_after_the_disk_heartbeat_dead_threshold():
    m = small_pool()
    deploy(m)
    t0 = m.now_s
    m.fail_server("ovs2")
    m.advance(K.DISK_HB_TIMEOUT_S - 1)
    assert "dead" not in kinds(m) and all(g.state == "down" for g in m.guests.values())
    m.advance(1)
    dead = next(e for e in m.events if e.kind == "dead")
    assert dead.time_s == pytest.approx(t0 + 60, abs=1e-3)
    assert all(g.state == "running" and g.server != "ovs2" for g in m.guests.values())


def test_restart_placement_prefers_preferred_servers_then_most_free_memory():
    m = small_pool(servers=4, memory_mib=2048)
    deploy(m, names=("a", "b", "c", "d"))
    m.set_guest_ha("d", True, preferred=("ovs4",))
    m.create_from_template("EL5", "filler", server="ovs1", memory_mib=768)
    m.fail_server("ovs2")
    m.advance(60)
    where = {g.name: g.server for g in m.guests.values()}
    # d goes to its preferred server; a, b, c in name order to the most free memory at each step
    # (ties: lowest node): ovs3 and ovs4 have more free than ovs1 (which holds 'filler').
    assert where["d"] == "ovs4"
    assert where["a"] == "ovs3" and where["b"] == "ovs4" and where["c"] == "ovs3"


def test_ha_needs_both_switches():
    m = small_pool()
    deploy(m, names=("on",))
    m.create_from_template("EL5", "off", server="ovs2", ha=False)
    m.fail_server("ovs2")
    m.advance(60)
    assert m.guests["on"].state == "running" and m.guests["off"].state == "down"
    assert any(e.kind == "refused" and "HA is off for this guest" in e.detail for e in m.events)


def test_ha_restart_loses_the_memory_contents():
    m = small_pool()
    deploy(m, names=("a",))
    hv = m.pool.servers["ovs2"]
    dom = m.agents["ovs2"].xm.lookup("a")
    hv.guest_write(dom.domid, range(10_000))      # the guest fills its page cache
    before = set(hv.memory.content[dom.mfns()].tolist()) - {0}
    m.fail_server("ovs2")
    m.advance(60)
    g = m.guests["a"]
    new = m.agents[g.server].xm.lookup("a")
    after = set(m.pool.servers[g.server].memory.content[new.mfns()].tolist()) - {0}
    assert before and not (before & after)          # no page of memory survived the restart
    assert any(e.kind == "lost" and "10000 pages" in e.detail for e in m.events)


def test_no_capacity_leaves_the_guest_down_with_a_reason():
    m = small_pool(servers=2, memory_mib=1536)
    deploy(m, names=("a", "b"), server="ovs2")
    m.create_from_template("EL5", "big", server="ovs1", memory_mib=512)
    m.fail_server("ovs2")
    m.advance(60)
    assert sum(g.state == "down" for g in m.guests.values()) >= 1
    assert any(e.kind == "refused" and "MiB free" in e.detail for e in m.events)


def test_master_failure_elects_the_lowest_surviving_node_and_restarts():
    m = small_pool()
    deploy(m, names=("a",), server="ovs1")
    m.fail_server("ovs1")
    m.advance(60)
    assert m.master == "ovs2" and m.guests["a"].state == "running" and m.guests["a"].server != "ovs1"
    assert "master" in kinds(m)


def test_vlan_missing_everywhere_blocks_the_ha_restart():
    m = small_pool()
    m.add_vlan(30, ["ovs2"])
    deploy(m, names=("v",), vlan=30)
    m.fail_server("ovs2")
    m.advance(60)
    assert m.guests["v"].state == "down"
    assert any("VLAN 30" in e.detail for e in m.events if e.kind == "refused")


def test_partition_without_fencing_runs_the_guest_twice_and_corrupts_its_image():
    """The teaching case: no quorum/fencing, the master restarts ovs3's guest while it still runs."""
    m = small_pool(fencing=False)
    deploy(m, names=("db",), server="ovs3")
    m.isolate("ovs3")
    m.advance(K.NET_IDLE_TIMEOUT_S + 30)
    assert m.guests["db"].server != "ovs3"
    assert m.agents["ovs3"].xm.lookup("db")          # the old instance still runs on ovs3
    m.heal()
    report = m.image(m.guests["db"]).fsck()
    assert not report.clean and report.extents > 0 and "db@ovs3" in report.writers
    assert "split-brain" in kinds(m)


def test_partition_with_fencing_does_not_corrupt():
    m = small_pool(fencing=True)
    deploy(m, names=("db",), server="ovs3")
    m.isolate("ovs3")
    m.advance(K.NET_IDLE_TIMEOUT_S)
    assert m.servers["ovs3"].state is ServerState.FENCED          # minority side fenced itself (o2quo)
    m.advance(K.DISK_HB_TIMEOUT_S + 30)
    assert m.guests["db"].state == "running" and m.guests["db"].server != "ovs3"
    m.heal()
    assert m.image(m.guests["db"]).fsck().clean


def test_even_split_keeps_the_side_with_the_lowest_node():
    m = small_pool(servers=4)
    m.partition([{"ovs1", "ovs2"}, {"ovs3", "ovs4"}])
    m.advance(K.NET_IDLE_TIMEOUT_S)
    assert [m.servers[s].state for s in ("ovs1", "ovs2", "ovs3", "ovs4")] == [
        ServerState.UP, ServerState.UP, ServerState.FENCED, ServerState.FENCED]


def test_lost_disk_heartbeat_fences_the_server_itself():
    m = small_pool()
    deploy(m, names=("a",), server="ovs3")
    m.cut_storage("ovs3")
    m.advance(K.DISK_HB_TIMEOUT_S)
    assert m.servers["ovs3"].state is ServerState.FENCED
    assert m.guests["a"].server != "ovs3" and m.guests["a"].state == "running"
    m.heal()
    assert m.image(m.guests["a"]).fsck().clean


def test_heal_brings_servers_back_empty():
    m = small_pool()
    deploy(m, names=("a",))
    m.fail_server("ovs2")
    m.advance(60)
    m.heal()
    assert m.servers["ovs2"].state is ServerState.UP and m.agents["ovs2"].alive
    assert [d.name for d in m.pool.servers["ovs2"].domains.values()] == ["Domain-0"]


def test_time_runs_during_copies_and_events_stay_in_order():
    m = small_pool()
    deploy(m, names=("a",))
    m.import_template("BIG", memory_mib=256, image_mib=4096)
    t0 = m.now_s
    m.fail_server("ovs2")
    m.create_from_template("BIG", "x", server="ovs1")      # 36.5 s of copying over NFS
    m.create_from_template("BIG", "y", server="ovs3")      # the 60 s timer expires during this copy
    times = [e.time_s for e in m.events]
    assert times == sorted(times)
    assert m.guests["a"].state == "running" and next(e for e in m.events if e.kind == "dead").time_s == pytest.approx(
        t0 + 60, abs=1e-3)
