"""The isolation checker (hypervisor/isolation.py) sees every kind of mapping and names what breaks.

Rules from xen/arch/x86/mm.c (get_page_from_l1e: only frames the domain owns, or a
privileged foreign mapping; get_page_type: no writable mapping of a page table; the
counts equal the references) and grant_table.c (__gnttab_map_grant_ref: a foreign
frame only through a grant the granter offered). Shadow (xen/arch/x86/mm/shadow) and
EPT (p2m-ept.c) entries map only the guest's own frames.
"""

import numpy as np
import pytest

from vmlab.guest.kernel import boot_kernel
from vmlab.hypervisor.isolation import violations

VA = 0x4000_0000


@pytest.mark.parametrize("scheme", ["pv", "shadow", "nested"])
def test_a_busy_guest_of_every_scheme_is_isolated(scheme):
    k = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 16)
    k.fork(pid)
    k.flush()
    k.access([VA + i * 4096 for i in range(16)])
    assert violations(k.hv) == []


def _foreign_mfn(hv, domid):
    return int(hv.dom0.p2m[7])


def test_a_shadow_entry_pointing_at_another_domains_frame_is_named():
    k = boot_kernel("shadow", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 4)
    k.flush()
    k.access([VA])
    sh = k.paging.shadow
    l1 = next(m for t in sh.trees.values() for lvl, m in t.shadow_of.values() if lvl == 1)
    words = k.hv.memory.table(l1)
    i = int(np.flatnonzero(words)[0])
    words[i] = np.uint64((_foreign_mfn(k.hv, k.domid) << 12) | 0x3)
    assert any("shadow L1" in p and "without owning it" in p for p in violations(k.hv))


def test_a_count_that_disagrees_with_the_references_is_named():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 4)
    k.flush()
    mem = k.hv.memory
    root = int(k.p2m[k.procs[pid].root])
    mem.tot_count[root] += 1
    assert any(f"frame {root:#x}: tot_count" in p for p in violations(k.hv))


@pytest.mark.parametrize("scheme, large", [("nested", False), ("nested", True), ("shadow", False)])
def test_decrease_reservation_removes_the_ept_and_shadow_entries_of_the_frames(scheme, large):
    """guest_remove_page -> guest_physmap_remove_page (EPT entry cleared; a 2 MiB entry split) and
    shadow_drop_references (sh_remove_all_mappings): the HVM guest cannot reach a freed frame."""
    from vmlab.hypervisor import constants as C
    opts = {"nested_large_pages": True} if large else {}
    k = boot_kernel(scheme, memory_mib=32, host_memory_mib=256, dom0_mem_mib=32, **opts)
    pid = k.spawn()
    pfns = np.asarray(k.map(pid, VA, 8), np.int64)
    k.flush()
    k.access([VA + i * 4096 for i in range(8)])   # shadows and EPT entries now map these pages
    hv, dom = k.hv, k.hv.domains[k.domid]
    gone = np.unique(np.concatenate([np.flatnonzero(dom.p2m != C.INVALID_MFN)[-4:], pfns[:2]]))
    assert hv.hypercall(k.domid, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, gone.size, gone) == gone.size
    assert violations(hv) == []
