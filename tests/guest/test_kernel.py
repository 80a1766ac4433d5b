"""The guest kernel driver: address spaces and Linux-style lazy-MMU batching under PV."""

import numpy as np
import pytest

from vmlab.errors import CapacityError, ConfigError
from vmlab.guest.kernel import MC_BATCH, boot_kernel
from vmlab.guest.access import access_stream, hot_cold, sequential, strided, uniform
from vmlab.paging import direct

VA = 0x4000_0000


def pv(batch_size=MC_BATCH, **kw):
    return boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, batch_size=batch_size, **kw)


def test_mc_batch_is_linuxs_32():
    assert MC_BATCH == 32


def test_map_batches_updates_32_to_a_multicall():
    k = pv()
    pid = k.spawn()                     # PIN_L4 + NEW_BASEPTR, flushed for the CR3 load
    k.map(pid, VA, 64)                  # 3 links + 64 leaves = 67 entries: two full batches, 3 left queued
    k.flush()
    c = k.counters()
    assert c["batches"] == 4 and c["mc_hypercalls"] == 69
    assert c["batch_histo"][32] == 2 and c["batch_histo"][2] == 1 and c["batch_histo"][3] == 1
    assert c["flush_reasons"] == {"cr3": 1, "slots": 2, "explicit": 1}
    assert c["hypercalls"] == 4


def test_batch_size_one_is_one_hypercall_per_update():
    k = pv(batch_size=1)
    pid = k.spawn()
    k.map(pid, VA, 64)
    c = k.counters()
    assert c["batches"] == c["mc_hypercalls"] == 69


def test_queued_updates_are_flushed_before_a_tlb_flush_and_before_memory_is_touched():
    k = pv()
    pid = k.spawn()
    k.map(pid, VA, 10)
    assert k._qlen == 13
    k.access([VA])
    assert k.counters()["flush_reasons"]["access"] == 1 and k._qlen == 0
    k.unmap(pid, VA, 40)
    assert k.counters()["flush_reasons"]["tlb_flush"] == 1


def test_fork_copies_mappings_read_only_and_write_protects_the_parent():
    k = pv()
    pid = k.spawn()
    k.map(pid, VA, 20)
    child = k.fork(pid)
    k.switch_to(child)
    for va in (VA, VA + 19 * 4096):
        mfn, fault = k.translate(va)
        assert fault is None and mfn == k.p2m[k.mappings(pid)[va >> 12]]
        assert k.translate(va, write=True)[1] == 0b111      # present, write, user: COW
    assert direct.audit(k.hv, k.domid) == []


def test_exec_and_exit_give_every_frame_back():
    k = pv()
    pid = k.spawn()
    free0 = len(k.free)
    k.map(pid, VA, 50)
    child = k.fork(pid)
    k.exec(child)
    k.exit(child)
    k.unmap(pid, VA, 50)
    # the first process keeps its tables (Linux frees them lazily); everything else is back
    assert len(k.free) == free0 - 3
    assert direct.audit(k.hv, k.domid) == []


def test_access_counts_tlb_hits_misses_and_faults():
    k = pv()
    pid = k.spawn()
    k.map(pid, VA, 8)
    vas = np.concatenate([VA + np.arange(8) * 4096, VA + np.arange(8) * 4096, [VA + 100 * 4096]])
    r = k.access(vas)
    assert r == {"accesses": 17, "tlb_misses": 9, "walk_refs": 36, "faults": 1}


def test_bad_requests_raise_config_errors():
    k = pv()
    pid = k.spawn()
    with pytest.raises(ConfigError):
        k.map(pid, VA + 5, 1)
    k.map(pid, VA, 2)
    with pytest.raises(ConfigError):
        k.map(pid, VA + 4096, 1)
    with pytest.raises(ConfigError):
        boot_kernel("bt")
    with pytest.raises(CapacityError):
        k.map(pid, VA + (1 << 30), 10_000)


def test_workloads_are_seeded_arrays():
    a, w = access_stream("uniform", 1000, 64, seed=3)
    b, w2 = access_stream("uniform", 1000, 64, seed=3)
    assert np.array_equal(a, b) and np.array_equal(w, w2) and a.dtype == np.int64
    for gen in (sequential, uniform, hot_cold, strided):
        x = gen(500, 32, seed=1)
        assert x.shape == (500,) and ((x - VA) >> 12).max() < 32


@pytest.mark.parametrize("scheme", ["native", "pv", "shadow", "nested"])
def test_hypervisor_invariants_hold_under_every_scheme(scheme):
    k = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    a = k.spawn()
    k.map(a, VA, 40)
    b = k.fork(a)
    k.switch_to(b)
    k.access(VA + np.arange(40) * 4096)
    k.exec(b)
    k.map(b, VA, 3)
    k.switch_to(a)
    k.exit(b)
    k.hv.check_invariants()
    if scheme == "pv":
        assert direct.audit(k.hv, k.domid) == []
    assert sorted(k.procs) == [a]


def test_destroying_the_domain_gives_shadow_and_nested_frames_back_to_the_heap():
    from vmlab.guest.kernel import GuestKernel
    from vmlab.hardware.host import Host, HostSpec
    from vmlab.hypervisor import constants as C
    from vmlab.hypervisor.hypervisor import Hypervisor
    from vmlab.toolstack.config import virt_install
    from vmlab.toolstack.xm import Toolstack

    xm = Toolstack(Hypervisor(Host(HostSpec(memory_mib=2048))))
    xen_before = xm.hv.memory.count_owned(C.DOMID_XEN)
    for scheme in ("shadow", "nested"):
        dom = xm.create(virt_install(name=f"g{scheme}", ram=128, hvm=True))
        k = GuestKernel(xm.hv, dom.domid, scheme=scheme)
        pid = k.spawn()
        k.map(pid, 0x400000, 64)
        k.switch_to(pid)
        k.access([0x400000 + 4096 * i for i in range(64)])
        assert xm.hv.memory.count_owned(C.DOMID_XEN) > xen_before
        xm.destroy(dom.name)
        assert xm.hv.memory.count_owned(C.DOMID_XEN) == xen_before
    assert not any(getattr(h, '__self__', None).__class__ is GuestKernel for h in xm.hv.destroy_hooks)
    xm.hv.check_invariants()
