"""netback (Linux drivers/xen/netback): copies with GNTTABOP_copy, refuses runts, drops without RX buffers."""

from vmlab.io.netif import ETH_HLEN, NETIF_RSP_ERROR, NetifTxRequest


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
