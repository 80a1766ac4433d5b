"""The PV paging rows of the hypercall table and the multicall that batches them."""

from vmlab.guest.kernel import boot_kernel
from vmlab.hypervisor import constants as C
from vmlab.paging.pv_hypercalls import explain, install


def test_install_registers_four_rows_with_xens_numbers():
    k = boot_kernel("native", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    install(k.hv)
    rows = {n: k.hv.hypercalls[n].number for n in ("mmu_update", "mmuext_op", "update_va_mapping", "multicall")}
    assert rows == {"mmu_update": 1, "mmuext_op": 26, "update_va_mapping": 14, "multicall": 13}


def test_multicall_runs_every_entry_and_refuses_nesting():
    k = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    out: dict = {}
    entries = [("xen_version", (0,)), ("multicall", ([],)), 5]   # 5: not an (op, args) entry
    assert k.hv.hypercall(k.domid, "multicall", entries, 3, out) == 0
    assert out["results"][1:] == [C.EINVAL, C.EINVAL] and out["results"][0] > 0 and out["done"] == 3
    assert k.hv.hypercall(k.domid, "multicall", 7) == C.EFAULT
    assert k.hv.hypercall(k.domid, "mmu_update", [(1, 2)], 5, {}) == C.EINVAL and isinstance(explain(k.hv), str)
