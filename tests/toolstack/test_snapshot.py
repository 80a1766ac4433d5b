import pytest

from helpers import make_xm, pv, snapshot
from vmlab.errors import SnapshotError
from vmlab.toolstack.snapshot import MAGIC


@pytest.fixture
def saved(tmp_path):
    xm = make_xm()
    xm.create(pv("vm1"))
    path = tmp_path / "vm1.sav"
    xm.save("vm1", str(path))
    return xm, path


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum"),
    (lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:], "checksum|damaged|truncated"),
    (lambda b: b"LinuxGuestRecord" + b[10:], "not a vmlab save file"),
    (lambda b: MAGIC + (2).to_bytes(4, "little") + b[14:], "format version 2"),
    (lambda b: b[:12], "truncated"),
])
def test_damaged_save_files_are_refused_and_restore_nothing(saved, damage, match):
    xm, path = saved
    path.write_bytes(damage(path.read_bytes()))
    before = snapshot(xm.hv)
    with pytest.raises(SnapshotError, match=match):
        xm.restore(str(path))
    assert snapshot(xm.hv) == before


def test_restore_into_a_full_host_is_refused(saved):
    xm, path = saved
    xm.create(pv("hog", memory=3300))
    with pytest.raises(Exception, match="exceeds"):
        xm.restore(str(path))


def test_unwritable_save_path_keeps_the_guest_running(tmp_path):
    xm = make_xm()
    xm.create(pv("vm1"))
    with pytest.raises(SnapshotError, match="cannot write"):
        xm.save("vm1", str(tmp_path / "missing-dir" / "vm1.sav"))
    assert xm.lookup("vm1").state.value == "blocked"


def test_xm_save_reads_the_guest_through_dom0_foreign_mappings(tmp_path):
    """xc_domain_save (Xen 3.1) maps each batch of MAX_BATCH_SIZE guest frames with
    xc_map_foreign_batch: dom0's mmu_update names the guest in foreigndom (do_mmu_update)."""
    xm = make_xm()
    dom = xm.create(pv("vm1"))
    domid, pages = dom.domid, dom.tot_pages
    n0 = len(xm.hv.trace)
    xm.save("vm1", str(tmp_path / "vm1.sav"))
    new = xm.hv.trace.events[n0:]
    maps = [e for e in new if e.kind == "foreign_map"]
    assert maps and all(e.domid == 0 and e.detail == f"mmu_update foreigndom={domid}" for e in maps)
    assert sum(e.value for e in maps) == pages and max(e.value for e in maps) <= 1024
    assert sum(1 for e in new if e.kind == "hypercall" and e.domid == 0 and e.detail == "mmu_update") == 2 * len(maps)
