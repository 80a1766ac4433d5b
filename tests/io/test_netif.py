import pytest

from vmlab.hypervisor.domain import VifSpec
from vmlab.io.hotplug import attach_vif
from vmlab.io.netif import BROADCAST, ETH_HLEN, EthernetFrame, NETIF_RSP_ERROR, NetifTxRequest


@pytest.fixture
def lan(two_guests):
    hv, d1, d2, io = two_guests
    a = attach_vif(io, d1, VifSpec(bridge="xenbr0"))
    b = attach_vif(io, d2, VifSpec(bridge="xenbr0"))
    return hv, io, a, b


def test_a_frame_from_one_guest_reaches_the_other_with_its_data(lan):
    hv, io, a, b = lan
    _, stamp = a.front.send(b.mac, 1000)
    io.run()
    assert b.front.received == [(1000, stamp)]
    assert a.front.counts["tx_packets"] == 1 and a.back.counts["grant_copies"] == 1
    assert b.back.counts["grant_copies"] == 1


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


def test_a_runt_transmit_gets_an_error_response(lan):
    hv, io, a, b = lan
    t = io.grants.table(a.domid)
    pfn = a.front.free_tx_pfns.pop()
    ref = t.grant_foreign_access(0, io.mfn(a.domid, pfn), readonly=True)
    a.front.tx_pending[999] = (ref, pfn)
    a.front.tx.put_request(NetifTxRequest(ref, 0, 0, 999, ETH_HLEN - 1))
    a.front.kick()
    io.run()
    assert a.front.tx_status[999] == NETIF_RSP_ERROR and b.front.received == []


def test_frames_for_a_guest_with_no_rx_buffers_are_dropped(lan):
    hv, io, a, b = lan
    b.front.rx_posted.clear()
    b.front.rx.sring.req_prod = b.front.rx.req_prod_pvt = b.back.rx.req_cons  # no buffers outstanding
    a.front.send(b.mac, 500)
    io.run()
    assert b.back.counts["rx_dropped"] == 1 and b.front.received == []


def test_two_vifs_may_not_share_a_mac(two_guests):
    hv, d1, d2, io = two_guests
    a = attach_vif(io, d1, VifSpec(mac="00:16:3e:00:00:99"))
    from vmlab.errors import ConfigError
    with pytest.raises(ConfigError, match="already used"):
        attach_vif(io, d2, VifSpec(mac=a.mac))
