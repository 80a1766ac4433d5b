import pytest

from vmlab.errors import ConfigError
from vmlab.migration.link import TCP_EFFICIENCY, Link, link_goodput_Bps, rtt_s


def test_gigabit_link_carries_1448_payload_bytes_per_1538_on_the_wire():
    # Ethernet + IP + TCP with timestamps at a 1500-byte MTU (frame formats, not a measurement)
    assert TCP_EFFICIENCY == pytest.approx(1448 / 1538)
    assert link_goodput_Bps(Link()) == pytest.approx(1000e6 / 8 * 1448 / 1538)


def test_round_trip_is_the_link_latency_in_seconds():
    assert rtt_s(Link(latency_ms=0.5)) == pytest.approx(0.0005)


@pytest.mark.parametrize("kw, word", [({"bandwidth_mbps": 0}, "bandwidth_mbps"), ({"latency_ms": -1}, "latency_ms")])
def test_a_bad_link_is_refused_naming_the_value(kw, word):
    with pytest.raises(ConfigError, match=word):
        Link(**kw)


def test_the_pool_uses_the_same_link_record():
    from vmlab.toolstack.pool import ServerPool
    assert isinstance(ServerPool().link, Link)
