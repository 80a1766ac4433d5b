"""netfront (Linux drivers/net/xen-netfront.c): sends on TX, receives into the RX buffers it posted."""

from vmlab.io.netif import RX_DFL_MIN_TARGET


def test_a_frame_from_one_guest_reaches_the_other_with_its_data(lan):
    hv, io, a, b = lan
    _, stamp = a.front.send(b.mac, 1000)
    io.run()
    assert b.front.received == [(1000, stamp)]
    assert a.front.counts["tx_packets"] == 1 and a.back.counts["grant_copies"] == 1
    assert b.back.counts["grant_copies"] == 1


def test_netfront_keeps_rx_buffers_posted_for_netback(lan):
    """Linux netfront posts at least RX_DFL_MIN_TARGET (64) receive buffers, each a writable grant."""
    hv, io, a, b = lan
    assert len(a.front.rx_posted) >= RX_DFL_MIN_TARGET
