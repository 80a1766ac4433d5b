"""The netif protocol and the bridge (xen/include/public/io/netif.h; Linux bridge learning, 802.1Q)."""

import pytest

from vmlab.hypervisor.domain import VifSpec
from vmlab.io.hotplug import attach_vif
from vmlab.io.netif import BROADCAST, EthernetFrame


def test_the_bridge_learns_so_replies_are_not_flooded(lan):
    hv, io, a, b = lan
    a.front.send(BROADCAST, 60)
    io.run()
    br = io.bridges["xenbr0"]
    assert len(br.wire) == 1                      # broadcast also goes out of peth0
    b.front.send(a.mac, 60)
    io.run()
    assert len(br.wire) == 1 and a.front.received[-1][0] == 60


def test_vlans_keep_guests_apart_and_tag_frames_on_the_uplink(two_guests):
    hv, d1, d2, io = two_guests
    a = attach_vif(io, d1, VifSpec(bridge="xenbr0", vlan=10))
    b = attach_vif(io, d2, VifSpec(bridge="xenbr0", vlan=20))
    a.front.send(BROADCAST, 100)
    io.run()
    assert b.front.received == []
    tag, frame = io.bridges["xenbr0"].wire[-1]
    assert tag == "802.1Q vid 10" and frame.vlan == 10
    io.bridges["xenbr0"].inject(EthernetFrame("00:1b:21:aa:bb:cc", b.mac, 200, 42, vlan=20))
    io.bridges["xenbr0"].inject(EthernetFrame("00:1b:21:aa:bb:cc", b.mac, 300, 43, vlan=None))
    io.run()
    assert b.front.received == [(200, 42)] and a.front.received == []


def test_two_vifs_may_not_share_a_mac(two_guests):
    hv, d1, d2, io = two_guests
    a = attach_vif(io, d1, VifSpec(mac="00:16:3e:00:00:99"))
    from vmlab.errors import ConfigError
    with pytest.raises(ConfigError, match="already used"):
        attach_vif(io, d2, VifSpec(mac=a.mac))
