"""Maintenance mode: evacuation in waves of at most N migrations sharing the link; refusals."""

import pytest

from ovm_helpers import small_pool
from vmlab.errors import ConfigError
from vmlab.ovm import ServerState


def test_evacuation_runs_in_waves_sharing_the_link():
    m = small_pool(servers=3, memory_mib=4096)
    for n in ("a", "b", "c", "d", "e"):
        m.create_from_template("EL5", n, server="ovs1")
    rep = m.maintenance("ovs1", max_concurrent=2)
    assert [mv.wave for mv in rep.moves] == [1, 1, 2, 2, 3]
    assert [mv.share_mbps for mv in rep.moves] == [500, 500, 500, 500, 1000]
    waves = {}
    for mv in rep.moves:
        waves[mv.wave] = max(waves.get(mv.wave, 0), mv.seconds)
    assert rep.total_s == pytest.approx(sum(waves.values()))
    assert m.servers["ovs1"].state is ServerState.MAINTENANCE
    assert not any(g.server == "ovs1" for g in m.guests.values())
    assert m.place(m.guests["a"]) != "ovs1"


def test_more_concurrency_is_not_faster_on_a_shared_link():
    times = {}
    for n in (1, 4):
        m = small_pool(servers=3, memory_mib=4096)
        for g in ("a", "b", "c", "d"):
            m.create_from_template("EL5", g, server="ovs1")
        times[n] = m.maintenance("ovs1", max_concurrent=n).total_s
    assert times[4] == pytest.approx(times[1], rel=0.2)


def test_refusals_are_one_line_per_guest_and_the_rest_moves():
    m = small_pool(servers=2, memory_mib=2048)
    m.add_vlan(40, ["ovs1"])
    m.create_from_template("EL5", "huge", server="ovs1", memory_mib=640)
    m.create_from_template("EL5", "local", server="ovs1", repo="local@ovs1")
    m.create_from_template("EL5", "tagged", server="ovs1", vlan=40)
    m.create_from_template("EL5", "filler", server="ovs2", memory_mib=896)
    m.create_from_template("EL5", "ok", server="ovs1")
    rep = m.maintenance("ovs1")
    assert [mv.guest for mv in rep.moves] == ["ok"]
    assert len(rep.refusals) == 3 and all("\n" not in r for r in rep.refusals)
    text = "\n".join(rep.refusals)
    assert "local storage" in text and "VLAN 40" in text and "huge: no other server has 640 MiB free" in text
    assert m.guests["local"].server == "ovs1"


def test_bad_concurrency_is_refused():
    m = small_pool()
    with pytest.raises(ConfigError, match="max_concurrent=0"):
        m.maintenance("ovs1", max_concurrent=0)
