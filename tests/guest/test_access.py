"""Seeded guest access streams: the same seed gives the same addresses and writes."""

import numpy as np
import pytest

from vmlab.errors import ConfigError
from vmlab.guest.access import DEFAULT_BASE, WORKLOADS, access_stream


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_streams_are_seeded_and_stay_inside_their_pages(name):
    a, w = access_stream(name, 500, 64, seed=3)
    b, v = access_stream(name, 500, 64, seed=3)
    assert np.array_equal(a, b) and np.array_equal(w, v)
    assert a.min() >= DEFAULT_BASE and a.max() < DEFAULT_BASE + 64 * 4096


def test_an_unknown_workload_is_refused_by_name():
    with pytest.raises(ConfigError, match="boot-storm"):
        access_stream("boot-storm", 10, 4)
