import numpy as np
import pytest

from vmlab.errors import CapacityError, ConfigError
from vmlab.hardware.memory import FREE, MachineMemory, PageType, frames_from_mib, mib_from_frames


def test_allocation_takes_lowest_free_frames_and_accounts_exactly():
    mem = MachineMemory(1024)
    a = mem.allocate(1, 100)
    b = mem.allocate(2, 50)
    assert a.tolist() == list(range(100)) and b.tolist() == list(range(100, 150))
    assert mem.free_frames == 874
    assert mem.counts_by_owner() == {FREE: 874, 1: 100, 2: 50}
    mem.release(a[:10], owner=1)
    assert mem.allocate(3, 5).tolist() == list(range(5))
    mem.check()


def test_allocating_more_than_free_raises_and_changes_nothing():
    mem = MachineMemory(256)
    mem.allocate(1, 200)
    before = mem.owner.copy()
    with pytest.raises(CapacityError, match="57 frames .* only 56"):
        mem.allocate(2, 57)
    assert np.array_equal(before, mem.owner) and mem.free_frames == 56


def test_releasing_a_frame_of_another_owner_is_refused():
    mem = MachineMemory(64)
    mfns = mem.allocate(1, 4)
    with pytest.raises(ConfigError, match="belongs to owner 1, not 2"):
        mem.release(mfns, owner=2)
    assert mem.count_owned(1) == 4


def test_release_scrubs_type_counts_content_and_table_words():
    mem = MachineMemory(64)
    mfns = mem.allocate(1, 2)
    mem.content[mfns] = 7
    mem.page_type[mfns[0]] = PageType.L1
    mem.table(int(mfns[0]))[3] = 99
    mem.release(mfns, owner=1)
    assert mem.content[mfns].tolist() == [0, 0] and mem.page_type[mfns[0]] == PageType.NONE
    assert int(mfns[0]) not in mem.words


def test_runs_cover_every_frame_once():
    mem = MachineMemory(100)
    mem.allocate(1, 10)
    mem.allocate(2, 30)
    starts, lengths, owners = mem.runs()
    assert starts.tolist() == [0, 10, 40] and lengths.sum() == 100 and owners.tolist() == [1, 2, FREE]


def test_save_restore_round_trips():
    mem = MachineMemory(128)
    mem.allocate(3, 20)
    mem.table(5)[1] = 42
    back = MachineMemory.restore(mem.save())
    assert np.array_equal(back.owner, mem.owner) and back.free_frames == mem.free_frames
    assert back.words[5][1] == 42


def test_unit_conversions():
    assert frames_from_mib(512) == 131072 and mib_from_frames(131072) == 512
