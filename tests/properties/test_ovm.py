"""For any sequence of faults, heals, migrations and deployments in a fenced pool: no disk image is
ever written by two instances at once (fsck clean), every running guest in the inventory runs exactly
once, on the server the inventory says, and every hypervisor keeps its frame invariants."""

from hypothesis import given, settings, strategies as st

from vmlab.errors import VmlabError
from vmlab.ovm import Manager

SERVERS = ["ovs1", "ovs2", "ovs3"]
GUESTS = ["a", "b", "c", "d"]
op = st.one_of(
    st.tuples(st.just("deploy"), st.sampled_from(GUESTS), st.sampled_from(SERVERS + [None])),
    st.tuples(st.just("fail"), st.sampled_from(SERVERS)),
    st.tuples(st.just("isolate"), st.sampled_from(SERVERS)),
    st.tuples(st.just("cut"), st.sampled_from(SERVERS)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 29.0, 31.0, 61.0, 120.0])),
    st.tuples(st.just("migrate"), st.sampled_from(GUESTS), st.sampled_from(SERVERS)),
    st.tuples(st.just("maintenance"), st.sampled_from(SERVERS)),
)


def apply(m, o):
    if o[0] == "deploy":
        m.create_from_template("EL5", o[1], server=o[2], ha=True)
    elif o[0] == "fail":
        m.fail_server(o[1])
    elif o[0] == "isolate":
        m.isolate(o[1])
    elif o[0] == "cut":
        m.cut_storage(o[1])
    elif o[0] == "heal":
        m.heal()
    elif o[0] == "advance":
        m.advance(o[1])
    elif o[0] == "migrate":
        m.migrate(o[1], o[2])
    else:
        m.maintenance(o[1])


@settings(max_examples=30, deadline=None)
@given(st.lists(op, max_size=14))
def test_fenced_pool_never_has_two_writers_and_inventory_matches_the_servers(ops):
    m = Manager.create_pool(servers=3, memory_mib=1536, fencing=True)
    m.import_template("EL5", memory_mib=256, image_mib=64)
    m.set_pool_ha(True)
    for o in ops:
        try:
            apply(m, o)
        except VmlabError:
            pass
    m.heal()
    m.advance(1)
    for g in m.guests.values():
        assert m.image(g).fsck().clean, (g.name, ops)
        where = [s for s, hv in m.pool.servers.items() if any(d.name == g.name for d in hv.domains.values())]
        assert where == ([g.server] if g.state == "running" else []), (g, where)
    for hv in m.pool.servers.values():
        hv.check_invariants()
