"""The Manager's blob beside the pool: a round trip keeps everything the Manager knows."""

from ovm_helpers import small_pool
from vmlab.ovm.persist import dump_manager, load_manager
from vmlab.ovm.views import guests_text, pool_text
from vmlab.toolstack.state import dump_pool, load_pool


def test_round_trip_keeps_inventory_images_timers_and_events():
    m = small_pool()
    m.add_vlan(10, ["ovs1", "ovs2"])
    m.create_from_template("EL5", "a", server="ovs2", ha=True, vlan=10)
    m.set_pool_ha(True)
    m.advance(10)
    m.fail_server("ovs2")          # a pending heartbeat timer must survive the save
    pool = load_pool(dump_pool(m.pool))
    m2 = load_manager(pool, dump_manager(m))
    assert pool_text(m2) == pool_text(m) and guests_text(m2) == guests_text(m)
    assert (m2.image(m2.guests["a"]).blocks == m.image(m.guests["a"]).blocks).all()
    assert m2.events == m.events and m2.queue == m.queue
    m.advance(60)
    m2.advance(60)
    assert guests_text(m2) == guests_text(m) and [str(e) for e in m2.events] == [str(e) for e in m.events]


def test_xm_changes_behind_the_managers_back_are_reconciled():
    m = small_pool()
    m.create_from_template("EL5", "a", server="ovs1")
    m.pool.xm("ovs1").destroy("a")              # an administrator used xm directly
    m2 = load_manager(m.pool, dump_manager(m))
    assert m2.guests["a"].state == "stopped" and m2.image(m2.guests["a"]).mounts[-1].closed_s is not None
