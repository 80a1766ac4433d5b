"""The x86-64 page walk over tables stored in machine frames."""

import numpy as np

from vmlab.hardware.memory import MachineMemory
from vmlab.hardware.mmu import (PFEC_INSTR, PFEC_PRESENT, PFEC_RSVD, PFEC_USER, PFEC_WRITE, PTE_A, PTE_D, PTE_NX,
                                PTE_P, PTE_PS, PTE_RW, PTE_US, PTE_G, canonical, describe_pte, is_canonical, make_pte,
                                pte_frame, pte_flags, va_indices, walk, walk_many)

RW = PTE_P | PTE_RW | PTE_US


def tables(mem, va, leaf_frame, leaf_flags=RW, upper=RW):
    l4, l3, l2, l1 = 1, 2, 3, 4
    i4, i3, i2, i1 = va_indices(va)
    mem.table(l4)[i4] = make_pte(l3, upper)
    mem.table(l3)[i3] = make_pte(l2, upper)
    mem.table(l2)[i2] = make_pte(l1, upper)
    mem.table(l1)[i1] = make_pte(leaf_frame, leaf_flags)
    return l4


def test_pte_layout_matches_the_intel_bit_positions():
    assert (PTE_P, PTE_RW, PTE_US, PTE_A, PTE_D, PTE_PS, PTE_G, PTE_NX) == (1, 2, 4, 32, 64, 128, 256, 1 << 63)
    pte = make_pte(0x12345, PTE_P | PTE_RW | PTE_NX)
    assert pte == (0x12345 << 12) | 3 | (1 << 63)
    assert pte_frame(pte) == 0x12345 and pte_flags(pte) == 3 | (1 << 63)
    assert "RW" in describe_pte(pte) and "NX" in describe_pte(pte)


def test_address_split_and_canonical_form():
    va = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123
    assert va_indices(va) == (3, 5, 7, 9)
    assert is_canonical(0x7FFF_FFFF_F000) and not is_canonical(0x8000_0000_0000)
    assert is_canonical(canonical(0x8000_0000_0000)) and canonical(0x8000_0000_0000) == 0xFFFF_8000_0000_0000


def test_a_walk_reads_four_entries_and_sets_accessed_and_dirty():
    mem = MachineMemory(64)
    va = 0x4000_1000
    root = tables(mem, va, 42)
    r = walk(mem, root, va, write=True)
    assert r.ok and r.frame == 42 and r.refs == 4 and r.page_shift == 12
    assert [m for m, _ in r.path] == [1, 2, 3, 4]
    leaf = int(mem.table(4)[va_indices(va)[3]])
    assert leaf & PTE_A and leaf & PTE_D
    upper = int(mem.table(3)[va_indices(va)[2]])
    assert upper & PTE_A and not upper & PTE_D


def test_a_read_sets_accessed_but_not_dirty():
    mem = MachineMemory(64)
    root = tables(mem, 0x1000, 9)
    assert walk(mem, root, 0x1000).ok
    leaf = int(mem.table(4)[1])
    assert leaf & PTE_A and not leaf & PTE_D


def test_not_present_gives_error_code_without_p_bit():
    mem = MachineMemory(64)
    root = tables(mem, 0x1000, 9)
    r = walk(mem, root, 0x2000, write=True, user=True)
    assert r.fault == PFEC_WRITE | PFEC_USER and r.fault_level == 1 and r.refs == 4
    r = walk(mem, root, 1 << 39, user=False)
    assert r.fault == 0 and r.fault_level == 4 and r.refs == 1


def test_protection_faults_set_the_p_bit():
    mem = MachineMemory(64)
    root = tables(mem, 0x1000, 9, leaf_flags=PTE_P | PTE_US | PTE_NX)
    assert walk(mem, root, 0x1000, write=True).fault == PFEC_PRESENT | PFEC_WRITE | PFEC_USER
    assert walk(mem, root, 0x1000, fetch=True).fault == PFEC_PRESENT | PFEC_USER | PFEC_INSTR
    root = tables(MachineMemory(64), 0x1000, 9, leaf_flags=PTE_P | PTE_RW)   # supervisor page
    mem2 = MachineMemory(64)
    root = tables(mem2, 0x1000, 9, leaf_flags=PTE_P | PTE_RW)
    assert walk(mem2, root, 0x1000, user=True).fault == PFEC_PRESENT | PFEC_USER
    assert walk(mem2, root, 0x1000, user=False).ok


def test_a_failed_walk_sets_no_accessed_bits():
    mem = MachineMemory(64)
    root = tables(mem, 0x1000, 9, leaf_flags=PTE_P | PTE_US)
    walk(mem, root, 0x1000, write=True)
    assert not int(mem.table(4)[1]) & PTE_A


def test_a_2mib_page_ends_the_walk_at_level_2():
    mem = MachineMemory(2048)
    va = (1 << 30) + (3 << 21) + 0x5000
    i4, i3, i2, _ = va_indices(va)
    mem.table(1)[i4] = make_pte(2, RW)
    mem.table(2)[i3] = make_pte(3, RW)
    mem.table(3)[i2] = make_pte(1024, RW | PTE_PS)
    r = walk(mem, 1, va)
    assert r.ok and r.refs == 3 and r.page_shift == 21 and r.frame == 1024 + 5


def test_ps_in_an_l4_entry_is_a_reserved_bit_fault():
    mem = MachineMemory(64)
    mem.table(1)[0] = make_pte(2, RW | PTE_PS)
    assert walk(mem, 1, 0x1000).fault & PFEC_RSVD


def test_a_non_canonical_address_faults_without_touching_memory():
    mem = MachineMemory(64)
    r = walk(mem, 1, 0x8000_0000_0000)
    assert not r.ok and r.refs == 0


def test_walk_many_matches_walk_page_by_page():
    rng = np.random.default_rng(5)
    results = []
    for vector in (True, False):
        mem = MachineMemory(256)
        tables(mem, 0x1000, 9)
        l1 = mem.table(4)
        for i in range(2, 40):
            flags = [PTE_P | PTE_US, PTE_P | PTE_RW | PTE_US, PTE_P | PTE_RW, 0][i % 4]
            l1[i] = make_pte(100 + i, flags)
        vpns = np.array([1, 2, 3, 4, 5, 6, 7, 50, 1 << 27, 39])
        writes = np.array([True, True, True, False, True, False, True, False, False, True])
        if vector:
            frame, fault, refs, _ = walk_many(mem, 1, vpns, writes=writes)
            got = list(zip(frame.tolist(), [None if f < 0 else f for f in fault.tolist()], refs.tolist()))
        else:
            got = []
            for v, w in zip(vpns.tolist(), writes.tolist()):
                r = walk(mem, 1, v << 12, write=w)
                got.append((r.frame, r.fault, r.refs))
        results.append((got, {m: w.tobytes() for m, w in mem.words.items()}))
    assert results[0] == results[1]
