"""mmuext_op's command table (Xen's do_mmuext_op switch): one row per MMUEXT_* command."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hypervisor import constants as C
from vmlab.paging.mmuext import EXT_OPS, apply_ext_op
from vmlab.paging.pv_types import MMUEXT


def test_every_command_has_a_row_and_an_unknown_one_is_enosys():
    assert sorted(EXT_OPS) == sorted(MMUEXT.values())
    assert {EXT_OPS[c][0] for c in EXT_OPS} == set(MMUEXT)
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    assert apply_ext_op(k.hv, k.domid, 14, 0) == C.ENOSYS   # 14 is not a command Xen 3 defines


def test_frame_commands_need_a_frame_the_caller_owns():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    other = int(k.hv.dom0.p2m[0])
    assert apply_ext_op(k.hv, k.domid, MMUEXT["PIN_L1_TABLE"], other) == C.EINVAL
    assert apply_ext_op(k.hv, k.domid, MMUEXT["PIN_L1_TABLE"], k.mem.total_frames) == C.EINVAL
    assert apply_ext_op(k.hv, k.domid, MMUEXT["UNPIN_TABLE"], int(k.p2m[5])) == C.EINVAL   # not pinned
    assert apply_ext_op(k.hv, k.domid, MMUEXT["SET_LDT"], 0) == C.ENOSYS                  # not modelled
