"""Page-table pages are canonicalised on send (xc_domain_save canonicalize_pagetable, Xen 3.1)
and uncanonicalised on the receiver (xc_domain_restore uncanonicalize_pagetable)."""

import numpy as np

from vmlab.guest.kernel import boot_kernel
from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_FRAME_MASK, PTE_P
from vmlab.hypervisor import constants as C
from vmlab.migration.canonical import canonicalize_batch, uncanonicalize
from vmlab.migration.image import DomainSource

VA = 0x4000_0000


def _pv_guest():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    pid = k.spawn()
    k.map(pid, VA, 16)
    k.flush()
    return k


def test_the_sender_rewrites_page_table_mfns_as_pfns():
    k = _pv_guest()
    dom = k.hv.domains[k.domid]
    src = DomainSource(k.hv, k.domid)
    src.read(src.pfns)                                   # one pass: dom0 reads every page
    tables = {p for p in src.pfns.tolist() if k.mem.page_type[dom.p2m[p]] in (PageType.L1, PageType.L4)}
    assert tables and tables <= set(src.pagetables)
    for pfn, words in src.pagetables.items():
        live = k.mem.table(int(dom.p2m[pfn]))
        present = (live & np.uint64(PTE_P)) != 0
        mfn = ((live[present] & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
        sent = ((words[present] & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
        assert np.array_equal(dom.p2m[sent], mfn)      # each entry names the guest pfn of its mfn
        assert np.array_equal(words & ~np.uint64(PTE_FRAME_MASK), live & ~np.uint64(PTE_FRAME_MASK))
    assert src.races == 0


def test_uncanonicalize_maps_pfns_to_the_new_hosts_mfns():
    k = _pv_guest()
    dom = k.hv.domains[k.domid]
    tables, races = canonicalize_batch(k.hv, dom, np.flatnonzero(dom.p2m != C.INVALID_MFN))
    pfn, words = next(iter(tables.items()))
    assert np.array_equal(uncanonicalize(words, dom.p2m), k.mem.table(int(dom.p2m[pfn])))   # same host: identity
    other = dom.p2m + 1000                                # a "new host" with other frames
    back = uncanonicalize(words, other)
    present = (words & np.uint64(PTE_P)) != 0
    assert np.array_equal((back[present] >> np.uint64(12)) & np.uint64(PTE_FRAME_MASK >> 12),
                          other[((words[present] & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)]
                          .astype(np.uint64))
