"""An adversarial domU: every hypercall a guest can make, with hostile arguments.

After every step: the isolation invariant holds (Hypervisor.check_invariants ->
hypervisor/isolation.py, Xen's get_page_from_l1e / get_page_type / grant rules),
no privileged operation succeeded (do_domctl, console_io, foreign memory_op and
mmu_update foreigndom: -EPERM, xen/common/domctl.c IS_PRIV), and a refused call
changed nothing (a snapshot of the frame arrays and every subsystem's state is
equal before and after). CI runs a modest budget; `make fuzz` runs
VMLAB_FUZZ_EXAMPLES sequences (see the Makefile).
"""

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vmlab.hardware.host import Host, HostSpec
from vmlab.hardware.memory import frames_from_mib
from vmlab.hardware.mmu import PTE_G, PTE_P, PTE_PS, PTE_PWT, PTE_RW, PTE_US
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainConfig
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.io import grant_table as G
from vmlab.io.event_channel import (EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_close,
                                    EVTCHNOP_send, EVTCHNOP_status)
from vmlab.io.system import io_system
from vmlab.io.xenstore import XenstoreError
from vmlab.paging.direct import MMUEXT, pt_maddr, pv_state

GUEST_MIB = 16
NPFN = frames_from_mib(GUEST_MIB)
STATS = {"sequences": 0, "calls": 0}
FLAGS = st.sampled_from([PTE_P, PTE_P | PTE_RW, PTE_P | PTE_RW | PTE_US, PTE_P | PTE_PS, PTE_P | PTE_PWT,
                         PTE_P | PTE_G | PTE_RW, 0])
PFN = st.integers(0, 31)   # a handful of pages, so tables, pins and mappings meet often


def _build(hv, name):
    out: dict = {}
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["createdomain"], C.DOMID_INVALID, DomainConfig(name=name, memory_mib=GUEST_MIB), out)
    d = out["domid"]
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], d, GUEST_MIB * 1024)
    pfns = np.arange(NPFN, dtype=np.int64)
    hv.hypercall(0, "memory_op", C.XENMEM_populate_physmap, d, pfns.size, pfns)
    hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], d)
    io_system(hv).xenstore.introduce_domain(d, name)
    return d


def snapshot(hv) -> tuple:
    """Everything a refused call must leave as it was."""
    mem, io, pv = hv.memory, io_system(hv), pv_state(hv)
    return (mem.owner.tobytes(), mem.page_type.tobytes(), mem.type_count.tobytes(), mem.tot_count.tobytes(),
            mem.content.tobytes(), tuple(sorted((m, w.tobytes()) for m, w in mem.words.items() if w.any())),
            frozenset(pv.pinned), tuple(sorted(pv.cr3.items())), tuple(sorted(pv.user_cr3.items())),
            tuple(sorted(hv.held.items())),
            tuple((d, x.p2m.tobytes(), x.state.value, x.max_pages, x.privileged) for d, x in sorted(hv.domains.items())),
            tuple((d, tuple(t.flags), tuple(t.pin_read), tuple(t.pin_write)) for d, t in sorted(io.grants.tables.items())),
            tuple((d, tuple(sorted(m.handles.items()))) for d, m in sorted(io.grants.maptrack.items())),
            tuple((d, tuple(e.state), tuple(sorted(e.remote_dom.items())), tuple(sorted(e.remote_port.items())))
                  for d, e in sorted(io.events.domains.items()) if any(s != e.state[-1] for s in e.state[1:])),
            tuple(sorted((p, n.value, tuple(n.perms)) for p, n in io.xenstore.nodes.items())))


class AdversarialGuest(RuleBasedStateMachine):
    """dom0, a victim domU that offers one grant to the attacker, and the attacker."""

    @initialize()
    def boot(self):
        self.hv = Hypervisor(Host(HostSpec(name="ovs1", pcpus=2, memory_mib=256)), dom0_mem_mib=32)
        pv_state(self.hv)
        self.io = io_system(self.hv)
        self.v = _build(self.hv, "victim")
        self.a = _build(self.hv, "attacker")
        vt = self.io.grants.table(self.v)
        self.offered = vt.grant_foreign_access(self.a, int(self.hv.domains[self.v].p2m[5]))
        self.other = vt.grant_foreign_access(0, int(self.hv.domains[self.v].p2m[6]))
        self.handles: list[int] = []
        STATS["sequences"] += 1

    # --- helpers ----------------------------------------------------------------------
    def mfn(self, who: str, pfn: int, raw: int) -> int:
        if who == "own":
            return int(self.hv.domains[self.a].p2m[pfn]) if self.a in self.hv.domains else raw
        if who == "victim":
            return int(self.hv.domains[self.v].p2m[pfn])
        return raw

    def call(self, name, *args, privileged=False, refusal_changes_nothing=True):
        """The attacker calls; a refusal (rc < 0) must leave everything as it was."""
        STATS["calls"] += 1
        before = snapshot(self.hv) if refusal_changes_nothing else None
        rc = self.hv.hypercall(self.a, name, *args)
        if privileged:
            assert rc == C.EPERM, f"{name}{args[:2]} from a domU returned {rc}, not -EPERM"
        if rc < 0 and before is not None:
            assert snapshot(self.hv) == before, f"refused {name}{args[:2]} (rc {rc}) changed state"
        return rc

    # --- page tables ------------------------------------------------------------------
    @rule(table=PFN, idx=st.integers(0, 511), who=st.sampled_from(["own", "victim", "raw"]), pfn=PFN,
          raw=st.integers(0, 40_000), flags=FLAGS)
    def pte_write(self, table, idx, who, pfn, raw, flags):
        t = self.mfn("own", table, 0)
        self.call("mmu_update", [(pt_maddr(t, idx), (self.mfn(who, pfn, raw) << 12) | flags)])

    @rule(ptr=st.integers(0, (40_000 << 12)), val=st.integers(0, 1 << 64))
    def mmu_update_random(self, ptr, val):
        self.call("mmu_update", [(ptr, val)])

    @rule(level=st.integers(1, 4), who=st.sampled_from(["own", "victim", "raw"]), pfn=PFN, raw=st.integers(-5, 40_000))
    def pin(self, level, who, pfn, raw):
        self.call("mmuext_op", [(MMUEXT[f"PIN_L{level}_TABLE"], self.mfn(who, pfn, raw))])

    @rule(who=st.sampled_from(["own", "victim"]), pfn=PFN,
          cmd=st.sampled_from(["UNPIN_TABLE", "NEW_BASEPTR", "NEW_USER_BASEPTR", "INVLPG_LOCAL"]))
    def mmuext(self, who, pfn, cmd):
        self.call("mmuext_op", [(MMUEXT[cmd], self.mfn(who, pfn, 0))])

    @rule(ptr=st.integers(0, 1 << 40), val=st.integers(0, 1 << 40))
    def foreign_mmu_update(self, ptr, val):
        # Xen 3.1 set_foreigndom: an unprivileged caller may name only DOMID_IO -> -ESRCH (not -EPERM)
        rc = self.call("mmu_update", [(ptr, val)], None, None, self.v)
        assert rc == C.ESRCH, f"mmu_update naming domain {self.v} in foreigndom from a domU returned {rc}, not -ESRCH"

    @rule(bad_at=st.integers(0, 2), pfn=PFN)
    def multicall_with_a_bad_entry(self, bad_at, pfn):
        t = self.mfn("own", pfn, 0)
        entries = [("mmuext_op", ([(MMUEXT["PIN_L1_TABLE"], t)],)), ("mmuext_op", ([(MMUEXT["UNPIN_TABLE"], t)],)),
                   ("xen_version", ())]
        entries.insert(bad_at, ("domctl", (C.XEN_DOMCTL["destroydomain"], self.v)))
        out: dict = {}
        assert self.call("multicall", entries, None, out, refusal_changes_nothing=False) == 0
        assert out["results"][bad_at] == C.EPERM
        assert self.v in self.hv.domains

    # --- memory -------------------------------------------------------------------------
    @rule(pfns=st.lists(st.integers(-3, NPFN + 3), min_size=1, max_size=4, unique=True))
    def decrease_reservation(self, pfns):
        self.call("memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, len(pfns), pfns)

    @rule(pfns=st.lists(PFN, min_size=1, max_size=4, unique=True))
    def populate_physmap(self, pfns):
        self.call("memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, len(pfns), pfns)

    @rule(n=st.integers(-1, 8))
    def increase_reservation(self, n):
        self.call("memory_op", C.XENMEM_increase_reservation, C.DOMID_SELF, n, None, {})

    @rule(cmd=st.sampled_from([C.XENMEM_decrease_reservation, C.XENMEM_populate_physmap, C.XENMEM_current_reservation]))
    def memory_op_on_the_victim(self, cmd):
        self.call("memory_op", cmd, self.v, 1, [3], privileged=True)

    @rule(pfn=st.sampled_from([5, 6, 7]))
    def victim_balloons_out(self, pfn):
        """The granter gives back a frame the attacker may have mapped (the second break-in route)."""
        if self.hv.domains[self.v].p2m[pfn] != C.INVALID_MFN:
            self.hv.hypercall(self.v, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, 1, [pfn])

    # --- grants ---------------------------------------------------------------------------
    @rule(ref=st.sampled_from(["offered", "other", 0, 1, 7, 10_000]), ro=st.booleans(),
          dom=st.sampled_from(["victim", 0, 77]))
    def map_grant(self, ref, ro, dom):
        ref = {"offered": self.offered, "other": self.other}.get(ref, ref)
        dom = self.v if dom == "victim" else dom
        flags = G.GNTMAP_host_map | (G.GNTMAP_readonly if ro else 0)
        out: dict = {}
        self.call("grant_table_op", G.GNTTABOP_map_grant_ref, [{"ref": ref, "dom": dom, "flags": flags}], None, out)
        if out.get("status") == [G.GNTST_okay]:
            assert ref == self.offered and dom == self.v
            self.handles.append(out["handle"][0])

    @rule(which=st.integers(0, 4))
    def unmap_grant(self, which):
        h = self.handles.pop(which % len(self.handles)) if self.handles and which < 3 else which + 1000
        self.call("grant_table_op", G.GNTTABOP_unmap_grant_ref, [{"handle": h}])

    @rule(pfn=PFN, ref=st.sampled_from([0, 1, 2]))
    def copy_into_the_victim(self, pfn, ref):
        op = {"flags": G.GNTCOPY_dest_gref, "len": 64, "source": {"domid": C.DOMID_SELF, "gmfn": pfn, "offset": 0},
              "dest": {"domid": self.v, "ref": ref, "offset": 0}}
        before = self.hv.memory.content[self.hv.domains[self.v].mfns()].copy()
        out: dict = {}
        self.call("grant_table_op", G.GNTTABOP_copy, [op], None, out)
        if out.get("status") != [G.GNTST_okay]:
            assert np.array_equal(before, self.hv.memory.content[self.hv.domains[self.v].mfns()])

    # --- event channels -------------------------------------------------------------------
    @rule(port=st.integers(-1, 10), cmd=st.sampled_from([EVTCHNOP_bind_interdomain, EVTCHNOP_send,
                                                          EVTCHNOP_close, EVTCHNOP_status]))
    def event_channel_on_victim_ports(self, port, cmd):
        arg = {"remote_dom": self.v, "remote_port": port} if cmd == EVTCHNOP_bind_interdomain else \
            {"dom": self.v, "port": port} if cmd == EVTCHNOP_status else {"port": port}
        self.call("event_channel_op", cmd, arg, {}, refusal_changes_nothing=cmd != EVTCHNOP_send)

    @rule()
    def alloc_unbound_for_the_victim(self):
        assert self.call("event_channel_op", EVTCHNOP_alloc_unbound, {"dom": self.v, "remote_dom": self.a}, {}) < 0

    # --- privileged and xenstore ----------------------------------------------------------
    @rule(cmd=st.sampled_from(sorted(C.XEN_DOMCTL.values())), whom=st.sampled_from(["victim", 0]))
    def domctl(self, cmd, whom):
        self.call("domctl", cmd, self.v if whom == "victim" else 0, GUEST_MIB * 2048, {}, privileged=True)

    @rule(cmd=st.sampled_from([C.HVMOP_set_param, C.HVMOP_get_param]), index=st.integers(0, C.HVM_NR_PARAMS - 1))
    def hvm_op_on_the_victim(self, cmd, index):
        """do_hvm_op: rcu_lock_target_domain_by_id refuses a foreign domid to an unprivileged caller."""
        self.call("hvm_op", cmd, {"domid": self.v, "index": index, "value": 1}, privileged=True)

    @rule()
    def console_io(self):
        self.call("console_io", 0, "pwned", privileged=True)

    @rule(op=st.sampled_from(["read", "write", "mkdir", "rm"]),
          path=st.sampled_from(["/local/domain/{v}/name", "/local/domain/{v}/memory/target", "/local/domain/0/name",
                                "/local/domain/{v}/secret", "/tool/x", "/vm"]))
    def xenstore_outside_its_area(self, op, path):
        xs = self.io.xenstore
        path = path.format(v=self.v)
        before = snapshot(self.hv)
        STATS["calls"] += 1
        try:
            args = (path, "0") if op == "write" else (path,)
            getattr(xs, op)(self.a, *args)
        except XenstoreError as e:
            assert e.name in ("EACCES", "ENOENT", "EINVAL"), e.name
            assert snapshot(self.hv) == before
        else:
            assert op == "read" and f"/{self.v}/" not in path, f"{op} {path} succeeded for the attacker"

    @rule()
    def dom0_rebuilds_the_attacker(self):
        """xm destroy + xm create: the destroy route (pins, CR3, tables, grants, channels) at any moment."""
        self.hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], self.a)
        self.a = _build(self.hv, "attacker")
        self.offered = self.io.grants.table(self.v).grant_foreign_access(self.a, int(self.hv.domains[self.v].p2m[8]))
        self.handles = []

    @invariant()
    def isolation_holds(self):
        if hasattr(self, "hv"):
            self.hv.check_invariants()


_EXAMPLES = int(os.environ.get("VMLAB_FUZZ_EXAMPLES", "12"))
AdversarialGuest.TestCase.settings = settings(
    max_examples=_EXAMPLES, stateful_step_count=int(os.environ.get("VMLAB_FUZZ_STEPS", "25")),
    deadline=None, suppress_health_check=list(HealthCheck), derandomize="VMLAB_FUZZ_EXAMPLES" not in os.environ)
TestAdversarialGuest = AdversarialGuest.TestCase


def test_report_budget():
    """Runs last in this file: prints what the budget covered (make fuzz reads it)."""
    print(f"adversary: {STATS['sequences']} sequences, {STATS['calls']} calls, 0 violations")
