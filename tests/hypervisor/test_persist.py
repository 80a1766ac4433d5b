"""A whole hypervisor saved and loaded from per-component save()/restore() (hypervisor/persist.py)."""

import numpy as np

from helpers import make_xm, pv
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.hypervisor.persist import load_hypervisor, save_hypervisor


def _equal(a: Hypervisor, b: Hypervisor) -> None:
    assert b.host.spec == a.host.spec and b.now_ns == a.now_ns and b.xen_console == a.xen_console
    assert b.hardware == a.hardware and b.bridges == a.bridges
    assert np.array_equal(b.memory.owner, a.memory.owner) and np.array_equal(b.memory.content, a.memory.content)
    assert sorted(b.domains) == sorted(a.domains)
    for domid, d in a.domains.items():
        e = b.domains[domid]
        assert (e.name, e.state, e.max_pages, e.console) == (d.name, d.state, d.max_pages, d.console)
        assert np.array_equal(e.p2m, d.p2m)


def test_round_trip_gives_an_equal_hypervisor_that_keeps_working():
    xm = make_xm()
    xm.create(pv("vm1", memory=128))
    xm.create(pv("vm2", memory=64), paused=True)
    hv2 = load_hypervisor(*save_hypervisor(xm.hv))
    _equal(xm.hv, hv2)
    hv2.check_invariants()
    out: dict = {}
    assert hv2.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, pv("vm3").with_(), out) == 0
    assert out["domid"] == 3   # the domid counter came back too


def test_loaded_state_stays_as_runs_until_read():
    xm = make_xm()
    xm.create(pv("vm1", memory=128))
    hv2 = load_hypervisor(*save_hypervisor(xm.hv))
    dom = hv2.domains[1]
    assert dom._p2m is None and dom.tot_pages == xm.hv.domains[1].tot_pages   # counted from the runs
    assert hv2.memory.free_frames == xm.hv.memory.free_frames and "owner" in hv2.memory._runs_of
    assert hv2.domain_info(dom).tot_pages == xm.hv.domain_info(xm.hv.domains[1]).tot_pages
    _equal(xm.hv, hv2)   # reading expands exactly what was saved


def test_saving_twice_without_reading_gives_the_same_arrays():
    xm = make_xm()
    xm.create(pv("vm1", memory=128))
    meta, arrays = save_hypervisor(load_hypervisor(*save_hypervisor(xm.hv)))
    meta0, arrays0 = save_hypervisor(xm.hv)
    assert meta == meta0 and arrays.keys() == arrays0.keys()
    assert all(np.array_equal(arrays[k], arrays0[k]) for k in arrays)
