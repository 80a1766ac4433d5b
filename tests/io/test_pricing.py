import pytest

from vmlab.errors import ConfigError
from vmlab.io.pricing import IoCosts, cycles_breakdown


def test_io_costs_refuse_negative_cycles():
    with pytest.raises(ConfigError, match="hypercall_cycles"):
        IoCosts(hypercall_cycles=-1)


def test_cycles_breakdown_prices_each_counted_event():
    br = cycles_breakdown({"hypercalls": 2, "exits": 1}, IoCosts(hypercall_cycles=10, exit_to_device_model_cycles=100))
    assert br["hypercalls"] == 20 and br["exits"] == 100 and br["grant_ops"] == 0


def test_io_costs_can_follow_a_cost_model_preset():
    from vmlab.costs import preset
    p = preset("xen_pv")
    c = IoCosts.from_cost_model(p, grant_map_cycles=1)
    assert c.hypercall_cycles == p.hypercall_roundtrip_cycles and c.cpu_hz == p.clock_ghz * 1e9
    assert c.grant_map_cycles == 1
