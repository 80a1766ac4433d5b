"""`xm list -l`: xend's SXP domain records as Xen 3's xm prints them.

Order of entries: XendDomainInfo.sxpr() (Xen 3.0 tools/python/xen/xend/XendDomainInfo.py); layout:
PrettyPrint.prettyprint (tools/python/xen/xend/PrettyPrint.py, width 80).
"""

from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.commands import run_xm
from vmlab.toolstack.config import parse_xm_config
from vmlab.toolstack.pool import ServerPool
from vmlab.toolstack.sxp import prettyprint
from vmlab.toolstack.xm import Toolstack


def _pool() -> tuple[ServerPool, Toolstack]:
    hv = Hypervisor(Host(HostSpec(name="ovs1", memory_mib=4096, pcpus=2)))
    pool = ServerPool("p")
    pool.servers["ovs1"] = hv
    return pool, Toolstack(hv)


def test_dom0_record_in_xend_order_with_the_closing_paren_on_its_own_line():
    pool, _ = _pool()
    assert run_xm(pool, "list -l Domain-0") == "\n".join([
        "(domain",
        "    (domid 0)",
        "    (vcpus 2)",
        "    (vcpu_avail 3)",
        "    (memory 512)",
        "    (maxmem 512)",
        "    (name Domain-0)",
        "    (on_poweroff destroy)",
        "    (on_reboot restart)",
        "    (on_crash restart)",
        "    (state r-----)",
        "    (cpu_time 0.0)",
        "    (online_vcpus 2)",
        ")",
    ])


def test_a_domu_record_carries_its_image_and_quotes_atoms_with_spaces():
    pool, xm = _pool()
    xm.create(parse_xm_config("name = 'vm1'\nmemory = 256\nkernel = '/boot/vmlinuz-2.6.18-xen'\n"
                              "extra = 'root=/dev/xvda1 ro'\n"))
    out = run_xm(pool, "list --long vm1")
    # 4 + 79 columns do not fit in 80: the image list breaks, its (linux ...) still fits flat
    assert ("    (image\n        (linux (kernel /boot/vmlinuz-2.6.18-xen) (args 'root=/dev/xvda1 ro'))\n"
            "    )\n") in out
    assert "    (name vm1)" in out and out.startswith("(domain\n    (domid 1)\n")
    both = run_xm(pool, "list -l")
    assert both.count("(domain\n") == 2 and both.index("(domid 0)") < both.index("(domid 1)")


def test_prettyprint_keeps_a_list_flat_when_it_fits_and_breaks_it_otherwise():
    assert prettyprint(["a", ["b", 1], ["c", "x y"]]) == "(a (b 1) (c 'x y'))"
    long = ["image", ["linux", ["kernel", "/k" * 30], ["args", "a"]]]
    assert prettyprint(long) == "\n".join([
        "(image",
        "    (linux",
        "        (kernel " + "/k" * 30 + ")",
        "        (args a)",
        "    )",
        ")",
    ])
