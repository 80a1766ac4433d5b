"""Save/suspend and migration's source teardown give every frame back, as domain_kill does.

After `xm save` (xc_domain_save, then XEN_DOMCTL_destroydomain) and after the
commitment of `xm migrate` (the source destroyed), nothing the guest had (CR3, pins,
its validated tables' references) stays recorded and every frame is on the heap:
xen/arch/x86/domain.c domain_relinquish_resources, xen/common/page_alloc.c
free_domheap_pages.
"""

from vmlab.hardware.host import Disk, HostSpec, StorageKind
from vmlab.hardware.mmu import PTE_P, PTE_RW
from vmlab.hypervisor.domain import DiskSpec, DomainConfig
from vmlab.paging.direct import MMUEXT, pt_maddr, pv_state
from vmlab.toolstack.migrate import migrate
from vmlab.toolstack.pool import ServerPool

from tests.helpers import make_xm, pv


def _page_tables(hv, d):
    """The guest builds L1 -> L2 -> L3 -> L4, pins the L4 and loads it in CR3."""
    p2m = hv.domains[d].p2m
    l1, l2, l3, l4, x = (int(p2m[p]) for p in (50, 51, 52, 53, 54))
    assert hv.hypercall(d, "mmu_update", [(pt_maddr(l1, 0), (x << 12) | PTE_P | PTE_RW), (pt_maddr(l2, 0), (l1 << 12) | PTE_P),
                                          (pt_maddr(l3, 0), (l2 << 12) | PTE_P), (pt_maddr(l4, 0), (l3 << 12) | PTE_P)]) == 0
    assert hv.hypercall(d, "mmuext_op", [(MMUEXT["PIN_L1_TABLE"], l1), (MMUEXT["PIN_L4_TABLE"], l4),
                                         (MMUEXT["NEW_BASEPTR"], l4)]) == 0


def _clean(hv, free0):
    st = pv_state(hv)
    assert not st.pinned and not st.cr3 and not hv.held
    assert hv.memory.free_frames == free0
    hv.check_invariants()


def test_xm_save_of_a_guest_with_pinned_tables_and_cr3_frees_every_frame(tmp_path):
    xm = make_xm(memory_mib=1024)
    hv = xm.hv
    pv_state(hv)
    free0 = hv.memory.free_frames
    dom = xm.create(pv("vm1", memory=64))
    _page_tables(hv, dom.domid)
    xm.save("vm1", str(tmp_path / "vm1.save"))
    _clean(hv, free0)


def test_migration_source_teardown_frees_every_frame_of_a_guest_with_page_tables():
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=1024, disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                                                 Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"))))
    src = pool.server("ovs1")
    pv_state(src)
    free0 = src.memory.free_frames
    dom = pool.xm("ovs1").create(DomainConfig(name="vm1", memory_mib=64, disks=(DiskSpec(path="/OVS/running_pool/vm1/System.img"),)))
    _page_tables(src, dom.domid)
    migrate(pool, "vm1", "ovs2", seed=0)
    _clean(src, free0)
    pool.server("ovs2").check_invariants()


def test_a_device_failure_after_commitment_is_migration_failed_and_the_guest_stays_visible(monkeypatch):
    """xend stage 5 (XendCheckpoint.restore -> waitForDevices) fails after the source is gone:
    MigrationFailed with the report, the guest paused on the target where `xm list` shows it,
    and both `xm unpause` and `xm destroy` work (xend itself would destroy it: the guest lost)."""
    import pytest
    from vmlab.errors import MigrationFailed
    from vmlab.toolstack import migrate as mig
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=1024, disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                                                 Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"))))
    pool.xm("ovs1").create(DomainConfig(name="vm1", memory_mib=64, disks=(DiskSpec(path="/OVS/running_pool/vm1/System.img"),)))
    real = mig.devices.connect

    def broken(hv, dom, **kw):
        if hv is pool.server("ovs2"):
            raise RuntimeError("hotplug script vif-bridge failed")
        return real(hv, dom, **kw)
    monkeypatch.setattr(mig.devices, "connect", broken)
    with pytest.raises(MigrationFailed) as e:
        migrate(pool, "vm1", "ovs2", seed=0)
    assert "after commitment" in str(e.value) and e.value.report.status == "completed"
    assert "\n" not in str(e.value)
    monkeypatch.setattr(mig.devices, "connect", real)
    assert "vm1" not in pool.xm("ovs1").list_text()
    row = [line for line in pool.xm("ovs2").list_text().splitlines() if line.startswith("vm1")]
    assert row and "p" in row[0].split()[4]
    pool.xm("ovs2").unpause("vm1")
    pool.xm("ovs2").destroy("vm1")
    for name in ("ovs1", "ovs2"):
        pool.server(name).check_invariants()
