"""The Manager, the agents, repositories, templates and the refusals (nothing half-done)."""

import pytest

from ovm_helpers import small_pool
from vmlab.errors import VmlabError
from vmlab.ovm import Manager, Role, ServerState
from vmlab.ovm import messages as M
from vmlab.ovm.errors import (CopyFailed, HaRefused, MasterLost, NameInUse, NoCapacity, Refused, UnknownObject,
                              VlanMissing)
from vmlab.ovm.storage import LAYOUT, copy_cost
from vmlab.hardware.host import StorageKind


def snapshot(m):
    return (dict(m.guests), {k: (sorted(r.images), sorted(r.files)) for k, r in m.repos.items()},
            {n: sorted(d.name for d in hv.domains.values()) for n, hv in m.pool.servers.items()})


def test_roles_default_and_several_per_server(pool3):
    assert pool3.servers["ovs1"].roles == {Role.MASTER, Role.UTILITY, Role.VM}
    assert pool3.servers["ovs2"].roles == {Role.VM}
    pool3.set_roles("ovs2", frozenset({Role.MASTER, Role.VM}))
    assert pool3.master == "ovs2" and Role.MASTER not in pool3.servers["ovs1"].roles


def test_every_operation_goes_through_the_agents(pool3):
    pool3.create_from_template("EL5", "web1", server="ovs2")
    assert "CopyImage" in pool3.agents["ovs1"].log          # ovs1 is the Utility Server
    assert "StartGuest" in pool3.agents["ovs2"].log
    reply = pool3.send("ovs2", M.GetInfo())
    assert reply.ok and reply.value["guests"] == ["web1"]


def test_an_unreachable_agent_gives_a_typed_failure(pool3):
    pool3.fail_server("ovs3")
    reply = pool3.send("ovs3", M.GetInfo())
    assert not reply.ok and reply.failure.kind == M.UNREACHABLE


def test_repository_layout_and_storage_kinds(pool3):
    r = pool3.repos["OVS"]
    assert r.shared and r.kind is StorageKind.NFS
    assert all(f"/OVS/{d}/" in r.listing() for d in LAYOUT)
    assert not pool3.repos["local@ovs1"].shared and pool3.repos["local@ovs1"].owner == "ovs1"


def test_create_from_template_copies_through_the_utility_server_and_rewrites_vm_cfg(pool3):
    g, cost = pool3.create_from_template("EL5", "web1", memory_mib=384, vcpus=2)
    cfg = pool3.vm_cfg("web1")
    assert "name = 'web1'" in cfg and "memory = 384" in cfg and "vcpus = 2" in cfg and g.mac in cfg and g.uuid in cfg
    img = pool3.image(g)
    tmpl = pool3.repos["OVS"].images["/OVS/seed_pool/EL5/System.img"]
    assert (img.blocks == tmpl.blocks).all()            # a byte copy: same content stamps
    assert cost.wire_bytes == 2 * (256 << 20) and cost.seconds == pytest.approx((256 << 20) / copy_cost(
        StorageKind.NFS, 1).nbytes / (1 / copy_cost(StorageKind.NFS, 1).seconds))


def test_copy_time_depends_on_the_storage_kind():
    n = 1 << 30
    assert copy_cost(StorageKind.FC, n).seconds < copy_cost(StorageKind.NFS, n).seconds < copy_cost(StorageKind.LOCAL, n).seconds
    assert copy_cost(StorageKind.LOCAL, n).wire_bytes == 0


def test_clone_gets_new_identity_and_same_content(pool3):
    pool3.create_from_template("EL5", "web1")
    c, _ = pool3.clone("web1", "web2")
    a = pool3.guests["web1"]
    assert c.uuid != a.uuid and c.mac != a.mac and c.state == "stopped"
    assert (pool3.image(c).blocks == pool3.image(a).blocks).all()


def test_hvm_install_from_iso(pool3):
    pool3.import_iso("EL5-DVD", size_mib=64)
    g = pool3.install_hvm("win1", "EL5-DVD", memory_mib=512, disk_mib=64)
    assert g.kind == "hvm" and "builder = 'hvm'" in pool3.vm_cfg("win1")
    assert "file:/OVS/iso_pool/EL5-DVD/EL5-DVD.iso,hdc,r" in pool3.vm_cfg("win1")
    assert not pool3.image(g).blocks.any()


@pytest.mark.parametrize("call, err", [
    (lambda m: m.create_from_template("nope", "x"), UnknownObject),
    (lambda m: m.create_from_template("EL5", "web1"), NameInUse),
    (lambda m: m.create_from_template("EL5", "big", memory_mib=64 * 1024), NoCapacity),
    (lambda m: m.import_template("EL5"), NameInUse),
    (lambda m: m.install_hvm("w", "no-such-iso"), UnknownObject),
])
def test_bad_input_is_one_line_and_changes_nothing(pool3, call, err):
    pool3.create_from_template("EL5", "web1")
    before = snapshot(pool3)
    with pytest.raises(err) as e:
        call(pool3)
    assert "\n" not in str(e.value) and isinstance(e.value, VmlabError)
    assert snapshot(pool3) == before


def test_ha_on_local_storage_is_refused(pool3):
    with pytest.raises(HaRefused, match="shared repository"):
        pool3.create_from_template("EL5", "scratch", repo="local@ovs1", ha=True)
    assert "scratch" not in pool3.guests and not any("scratch" in p for p in pool3.repos["local@ovs1"].images)
    local_only = Manager.create_pool(servers=2, storage="local", memory_mib=1024)
    with pytest.raises(HaRefused, match="no shared repository"):
        local_only.set_pool_ha(True)


def test_utility_server_dying_mid_copy_removes_the_half_copied_image(pool3):
    before = snapshot(pool3)
    pool3.agents["ovs1"].die_after_bytes = 100 << 20
    with pytest.raises(CopyFailed, match="half-copied /OVS/running_pool/web1/System.img"):
        pool3.create_from_template("EL5", "web1")
    after = snapshot(pool3)
    assert after[0] == before[0] and after[1] == before[1]
    assert pool3.servers["ovs1"].state is ServerState.DOWN      # the injected fault itself stays


def test_master_dying_mid_operation_rolls_back(pool3):
    before = snapshot(pool3)
    pool3.inject["master-dies"] = "after-copy"
    with pytest.raises(MasterLost, match="rolled back"):
        pool3.create_from_template("EL5", "web1", server="ovs2")
    after = snapshot(pool3)
    assert after[0] == before[0] and after[1] == before[1] and after[2]["ovs2"] == ["Domain-0"]
    with pytest.raises(MasterLost, match="does not answer"):
        pool3.create_from_template("EL5", "web1", server="ovs2")
    pool3.advance(61)                                        # the dead master's heartbeat times out
    assert pool3.master == "ovs2"
    pool3.set_roles("ovs2", frozenset({Role.MASTER, Role.UTILITY, Role.VM}))
    assert pool3.create_from_template("EL5", "web1", server="ovs2")[0].state == "running"


def test_local_guest_cannot_migrate_and_vlan_is_checked_before_moving(pool3):
    pool3.create_from_template("EL5", "scratch", repo="local@ovs1")
    with pytest.raises(Refused, match="local"):
        pool3.migrate("scratch", "ovs2")
    pool3.add_vlan(10, ["ovs1"])
    pool3.create_from_template("EL5", "v10", server="ovs1", vlan=10)
    with pytest.raises(VlanMissing, match="VLAN 10 is not configured on ovs2"):
        pool3.migrate("v10", "ovs2")
    assert pool3.guests["v10"].server == "ovs1" and pool3.agents["ovs1"].xm.lookup("v10")


def test_vlans_isolate_guests(pool3):
    pool3.add_vlan(10)
    pool3.add_vlan(20)
    pool3.create_from_template("EL5", "a", vlan=10)
    pool3.create_from_template("EL5", "b", vlan=10)
    pool3.create_from_template("EL5", "c", vlan=20)
    assert pool3.can_reach("a", "b") and not pool3.can_reach("a", "c")
    assert "bridge=xenbr0.10" in pool3.vm_cfg("a")
