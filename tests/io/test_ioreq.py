"""The ioreq protocol between Xen and qemu-dm (Xen 3.4 hvm.c `hvm_send_assist_req`, io.c `hvm_io_assist`,
qemu-dm helper2.c `cpu_get_ioreq`/`__handle_ioreq`; numbers from public/hvm/ioreq.h)."""

from vmlab.io.ioreq import (IOREQ_READ, IOREQ_TYPE_COPY, ROUND_TRIP, STATE_IOREQ_INPROCESS, STATE_IOREQ_NONE,
                            STATE_IOREQ_READY, STATE_IORESP_READY, Ioreq, IoreqSlot, round_trip)


def test_ioreq_h_numbers():
    assert (STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS, STATE_IORESP_READY) == (0, 1, 2, 3)
    assert IOREQ_READ == 1 and IOREQ_TYPE_COPY == 1


def test_a_read_goes_guest_xen_evtchn_qemu_dm_xen_guest_and_returns_qemus_value():
    slot = IoreqSlot()
    data, hops = round_trip(slot, Ioreq(addr=0x1f7, dir=IOREQ_READ), device=lambda r: 0x50)
    assert data == 0x50 and slot.state == STATE_IOREQ_NONE and not slot.crashed
    assert hops == [s.hop for s in ROUND_TRIP] == ["guest -> Xen", "Xen -> qemu-dm", "qemu-dm", "qemu-dm -> Xen",
                                                   "Xen -> guest"]


def test_hvm_send_assist_req_crashes_the_domain_if_the_slot_is_busy():
    slot = IoreqSlot()
    assert slot.send(Ioreq(addr=0x1f0))
    assert not slot.send(Ioreq(addr=0x1f1)) and slot.crashed          # "Device model set bad IO state"


def test_hvm_io_assist_crashes_the_domain_on_an_unexpected_state():
    slot = IoreqSlot()
    slot.send(Ioreq(addr=0x1f0))
    assert slot.complete() is None and slot.crashed                    # qemu-dm never answered


def test_qemu_dm_takes_only_a_ready_request():
    slot = IoreqSlot()
    assert slot.take() is None
    slot.send(Ioreq(addr=0xfebf0000, type=IOREQ_TYPE_COPY))
    assert slot.take().addr == 0xfebf0000 and slot.state == STATE_IOREQ_INPROCESS
