import numpy as np
import pytest

from vmlab.hardware.host import Disk, HostSpec, StorageKind
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DiskSpec, DomainConfig, DomainState, VifSpec
from vmlab.migration import Fault, PostCopy, QemuPolicy, UniformWrites, Xen3Policy
from vmlab.migration.dirty_log import SHADOW_OP, install_shadow_op
from vmlab.errors import MigrationFailed, MigrationRefused
from vmlab.toolstack.commands import run_xm
from vmlab.toolstack.migrate import migrate
from vmlab.toolstack.pool import ServerPool


def _pool(storage=StorageKind.NFS, memory_mib=2048):
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=memory_mib,
                                 disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                        Disk(name="repo0", storage=storage, mount="/OVS"))))
    return pool


def _guest(pool, name="vm1", mib=128, path="/OVS/running_pool/vm1/System.img"):
    cfg = DomainConfig(name=name, memory_mib=mib, disks=(DiskSpec(path=path),), vifs=(VifSpec(),))
    dom = pool.xm("ovs1").create(cfg)
    pool.server("ovs1").set_load(dom.domid, 1.0)
    return dom


def _frames(hv, domid):
    d = hv.domains[domid]
    return hv.memory.content[d.p2m[d.p2m != C.INVALID_MFN]].copy()


def test_live_migration_moves_the_guest_and_xm_list_shows_it_on_the_target_only():
    pool = _pool()
    dom = _guest(pool)
    vif_backend = dom.devices[0].backend
    src, dst = pool.server("ovs1"), pool.server("ovs2")
    rep = migrate(pool, "vm1", "ovs2", live=True, workload=UniformWrites(rate_pages_s=20_000, wws_pages=2_000))
    assert rep.status == "completed" and rep.verified
    assert "vm1" not in run_xm(pool, "list", server="ovs1")
    assert "vm1" in run_xm(pool, "list", server="ovs2")
    new = next(d for d in dst.domains.values() if d.name == "vm1")
    assert new.state in (DomainState.RUNNING, DomainState.BLOCKED)
    assert new.devices[0].backend == vif_backend  # same bridge, same MAC
    src.check_invariants()
    dst.check_invariants()


def test_target_memory_equals_source_memory_at_pause():
    pool = _pool()
    dom = _guest(pool)
    src, dst = pool.server("ovs1"), pool.server("ovs2")
    seen = {}
    orig_pause = type(src).hypercall

    def spy(hv, caller, name, *args, **kw):
        if hv is src and name == "domctl" and args and args[0] == C.XEN_DOMCTL["pausedomain"]:
            seen["at_pause"] = _frames(src, args[1])
        return orig_pause(hv, caller, name, *args, **kw)

    type(src).hypercall = spy
    try:
        migrate(pool, "vm1", "ovs2", workload=UniformWrites(rate_pages_s=20_000, wws_pages=2_000))
    finally:
        type(src).hypercall = orig_pause
    new = next(d for d in dst.domains.values() if d.name == "vm1")
    assert np.array_equal(_frames(dst, new.domid), seen["at_pause"])


def test_local_storage_is_refused_and_nothing_changes():
    pool = _pool(storage=StorageKind.LOCAL)
    _guest(pool)
    before = run_xm(pool, "list", server="ovs2")
    with pytest.raises(MigrationRefused, match="shared"):
        migrate(pool, "vm1", "ovs2")
    assert run_xm(pool, "list", server="ovs2") == before


def test_target_without_memory_is_refused():
    pool = _pool(memory_mib=1024)
    _guest(pool, mib=256)
    pool.xm("ovs2").create(DomainConfig(name="big", memory_mib=300))
    pool.xm("ovs2").create(DomainConfig(name="big2", memory_mib=150))
    with pytest.raises(MigrationRefused, match="free"):
        migrate(pool, "vm1", "ovs2")


def test_wrong_relocation_port_is_refused():
    pool = _pool()
    _guest(pool)
    with pytest.raises(MigrationRefused, match="8002"):
        migrate(pool, "vm1", "ovs2", port=9000)


@pytest.mark.parametrize("fault", [Fault(kind="link", phase="precopy", round=2), Fault(kind="target", phase="stop-and-copy"),
                                   Fault(kind="cancel", at_s=0.2)])
def test_failure_before_commitment_keeps_the_guest_on_the_source_and_leaves_no_leftovers(fault):
    pool = _pool()
    dom = _guest(pool)
    src, dst = pool.server("ovs1"), pool.server("ovs2")
    free_before = dst.memory.free_frames
    with pytest.raises(MigrationFailed) as e:
        migrate(pool, "vm1", "ovs2", workload=UniformWrites(rate_pages_s=20_000, wws_pages=2_000), fault=fault)
    assert e.value.report.where == "source"
    assert dom.state in (DomainState.RUNNING, DomainState.BLOCKED)
    assert getattr(dom, "dirty_bitmap", None) is None
    assert dst.memory.free_frames == free_before and set(dst.domains) == {0}
    src.check_invariants()
    dst.check_invariants()


def test_failure_during_postcopy_loses_the_guest_and_says_so():
    pool = _pool()
    _guest(pool)
    with pytest.raises(MigrationFailed) as e:
        migrate(pool, "vm1", "ovs2", policy=PostCopy(), fault=Fault(kind="link", phase="postcopy"))
    assert e.value.report.guest_lost
    assert all(d.name != "vm1" for hv in pool.servers.values() for d in hv.domains.values())


def test_non_live_migration_uses_stop_and_copy():
    pool = _pool()
    _guest(pool)
    rep = migrate(pool, "vm1", "ovs2", live=False)
    assert rep.policy == "stop-and-copy" and rep.downtime_ms > 0.9 * (rep.total_time_ms - rep.setup_time_ms)


def test_xm_migrate_verb_prints_the_xend_log_for_xen_and_info_migrate_for_qemu():
    pool = _pool()
    _guest(pool)
    out = run_xm(pool, "migrate -l vm1 ovs2")
    assert out.splitlines()[0] == "xend.log (rounds):" and "xen3: completed" in out
    out = run_xm(pool, "migrate -l vm1 ovs1 --policy qemu")
    assert out.splitlines()[0] == "Migration status: completed"


def test_shadow_op_enable_clean_peek_off_through_domctl():
    pool = _pool()
    dom = _guest(pool)
    hv = pool.server("ovs1")
    install_shadow_op(hv)
    out = {}
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["ENABLE_LOGDIRTY"], out) == 0
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["ENABLE_LOGDIRTY"], out) == C.EINVAL
    hv.guest_write(dom.domid, np.array([3, 5, 5]))
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["PEEK"], out) == 0 and out["dirty"].tolist() == [3, 5]
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["CLEAN"], out) == 0 and out["dirty_count"] == 2
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["CLEAN"], out) == 0 and out["dirty_count"] == 0
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["OFF"], out) == 0
    assert hv.hypercall(0, "domctl", 10, dom.domid, SHADOW_OP["PEEK"], out) == C.EINVAL
    assert hv.hypercall(dom.domid, "domctl", 10, dom.domid, SHADOW_OP["PEEK"], out) == C.EPERM


@pytest.mark.parametrize("policy", [QemuPolicy(), QemuPolicy(postcopy=True), PostCopy(), Xen3Policy()])
def test_every_policy_moves_a_live_domain_with_memory_intact(policy):
    pool = _pool()
    _guest(pool)
    rep = migrate(pool, "vm1", "ovs2", policy=policy,
                  workload=UniformWrites(rate_pages_s=30_000, wws_pages=4_000))
    assert rep.status == "completed" and rep.verified
    dst = pool.server("ovs2")
    assert any(d.name == "vm1" for d in dst.domains.values())
    dst.check_invariants()
    pool.server("ovs1").check_invariants()


def test_a_fresh_guest_is_mostly_zero_pages_for_qemu():
    pool = _pool()
    _guest(pool)
    rep = migrate(pool, "vm1", "ovs2", policy=QemuPolicy(), workload=UniformWrites(rate_pages_s=0, wws_pages=1))
    assert rep.duplicate_pages > rep.normal_pages


def test_migrating_by_domid_is_refused_in_a_pool():
    pool = _pool()
    _guest(pool)
    with pytest.raises(Exception, match="name the guest"):
        migrate(pool, "1", "ovs2")


def test_a_ballooned_guest_migrates_with_its_holes():
    pool = _pool()
    dom = _guest(pool, mib=256)
    pool.xm("ovs1").mem_set("vm1", 128)
    holes = np.flatnonzero(dom.p2m == C.INVALID_MFN)
    assert holes.size > 0
    rep = migrate(pool, "vm1", "ovs2", workload=UniformWrites(rate_pages_s=10_000, wws_pages=1_000))
    new = next(d for d in pool.server("ovs2").domains.values() if d.name == "vm1")
    assert np.array_equal(np.flatnonzero(new.p2m == C.INVALID_MFN), holes)
    assert rep.memory_pages == dom.p2m.size - holes.size
    pool.server("ovs2").check_invariants()
