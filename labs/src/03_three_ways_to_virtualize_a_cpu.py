# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3 — Three ways to virtualize a CPU
#
# A guest kernel wants to do privileged things: load CR3, write page tables, mask interrupts, talk
# to devices. A hypervisor has three ways to let it, and they cost very different amounts:
#
# * **Paravirtualization (PV)** — what Oracle VM uses. The guest kernel is *modified*: it knows it
#   runs on Xen and asks for privileged work with **hypercalls**, which it can group.
# * **Hardware virtualization (HVM)** — the guest is unmodified; the CPU (VT-x/AMD-V) makes every
#   instruction the hypervisor has configured to trap **exit** to it, which handles it and resumes the guest.
# * **Binary translation (BT)** — VMware's software VMM: guest kernel code is translated, block by
#   block, into a *translation cache*; privileged instructions become cheap in-place emulation or
#   *callouts* into the VMM.
#
# Adams & Agesen (ASPLOS 2006) measured VMware's BT against its first VT-x VMM and found —
# surprisingly — that the hardware VMM often **lost**. In this lab you find out why, and when it
# wins, on workloads you can change.
#
# Every number the model uses comes from `datasets/tables/cost_presets.csv` (with its source and a
# confidence mark) or is labelled ILLUSTRATIVE. The model reproduces *orderings*, not digits.

# %%
# NBVAL_IGNORE_OUTPUT
from vmlab import widgets
from vmlab.costs import preset, missing_rows
from vmlab.datasets import load_table
from vmlab.exercises import Exercises
from vmlab.execution import (EXIT_TABLE, KVM_EXIT_TABLE, Op, OpStream, compare_paths, run_hvm, run_loop,
                             run_native, run_bt, run_pv, workload, NANOBENCHMARKS)
from vmlab.execution.exits import ioreq_round_trip
from vmlab.execution.native import walk_refs
from vmlab.widgets.path_comparer import PathComparer
widgets.setup_notebook()
ex = Exercises("Lab 3")
P4, KVM = preset("p4_vtx_2006"), preset("modern_kvm")

# %% [markdown]
# ## 1. A workload is a stream of operations
#
# vmlab describes what a guest does as a stream: plain computation, system calls, PTE writes, CR3
# loads, TLB flushes and misses, page faults, I/O, `cli`/`sti`, timer interrupts, `hlt`, `cpuid`,
# ... Here is one iteration of **forkwait** (fork a child, let it touch its memory and exit, wait
# for it — Adams & Agesen's process-creation benchmark):

# %%
one = workload("forkwait", 1)
print(len(one), "operations")
for name, n in one.mix().items():
    print(f"  {name:12s} {n:5d}")

# %% [markdown]
# ## 2. The cost model
#
# Each path turns the stream into what actually happens. Costs are per operation, in cycles, from
# a **preset**. `p4_vtx_2006` is the Pentium 4 with first-generation VT-x of the 2006 paper:

# %%
for field in ("syscall_native", "vmexit_roundtrip", "shadow_pte_write_trap", "bt_pte_write",
              "bt_syscall", "bt_callout", "hypercall_roundtrip"):
    v = getattr(P4, field + "_cycles")
    src = P4.source_of(field)
    print(f"{field:24s} {v:8.0f}  [{src.confidence}] {src.source}")
print(len(missing_rows("p4_vtx_2006")), "operations are ILLUSTRATIVE fallbacks not (yet) in the dataset")

# %% [markdown]
# ## 3. HVM: the exit loop, as data
#
# Hardware virtualization fits in one line — `while running: exit = vmresume(); handle[exit.reason]()`.
# vmlab keeps the handlers in a table keyed by the VT-x exit reason number, mapped to the handlers
# of Xen 3.4's `vmx_vmexit_handler` (xen/arch/x86/hvm/vmx/vmx.c). Devices are not in Xen: they are
# emulated by **qemu-dm**, a process in dom0. An `in`/`out` (IO_INSTRUCTION), or an access to a
# device page — under EPT an **EPT violation** on a `p2m_mmio_dm` page, under shadow paging a #PF
# on one — goes to `handle_mmio`, which sends qemu-dm an **ioreq**:

# %%
for reason, h in EXIT_TABLE.items():
    print(f"{reason.value:3d} {reason.name:19s} {h.where:24s} {h.handler}")

# %% [markdown]
# One ioreq is a round trip through dom0, hop by hop (`vmlab.io.ioreq`): Xen writes the request
# into the vCPU's slot of the shared ioreq page and kicks qemu-dm's event channel; qemu-dm emulates
# the register, answers in the same slot and kicks back; Xen completes the access and resumes the
# guest. Its cost, per hop, for `p4_vtx_2006` (the exit, Xen's decode and qemu-dm's notify are
# preset fields with sources; the rest of the preset's `io_exit_to_device_model` figure is dom0
# waking qemu-dm and the emulation itself):

# %%
for mechanism, what, cycles in ioreq_round_trip("IO_INSTRUCTION", P4):
    print(f"{what:45s} {cycles:7.0f}  ({mechanism})")
print(f"{'one ioreq round trip':45s} {sum(c for *_, c in ioreq_round_trip('IO_INSTRUCTION', P4)):7.0f}")

# %% [markdown]
# KVM, for comparison, handles MMIO under EPT with a deliberately *misconfigured* EPT entry and
# returns every device access to the user-space VMM (kvmtool, QEMU) — one loop, no dom0 in between:

# %%
for reason, h in KVM_EXIT_TABLE.items():
    if reason.name in ("IO_INSTRUCTION", "EPT_MISCONFIG", "EPT_VIOLATION"):
        print(f"{reason.value:3d} {reason.name:19s} {h.where:26s} {h.handler}")

# %%
# Run Xen's loop literally on one forkwait iteration, under shadow paging:
loop = run_loop(one, P4, paging="shadow")
print(f"{loop.total_cycles:,.0f} cycles; exits by reason: {loop.exits}; ioreqs to qemu-dm: {loop.ioreqs}")

# %%
# forkwait touches no device. One emulated IDE command is 12 port accesses: 12 ioreqs, 60 hops.
ide = OpStream.build("ide", [Op.PORT_IO] * 12, value=list(range(12)))
loop = run_loop(ide, P4, paging="nested")
print(f"{loop.total_cycles:,.0f} cycles; exits: {loop.exits}; ioreqs: {loop.ioreqs}; hops: {len(loop.ioreq_hops)}")
print(" | ".join(loop.ioreq_hops[:5]))

# %% [markdown]
# ## 4. Nanobenchmarks
#
# **Exercise first.** Under shadow paging every guest PTE write exits. How many cycles does one iteration
# of `ptemod` cost under HVM with `p4_vtx_2006`? (One iteration = a 10-cycle loop step plus one PTE
# write; use the table in section 2. `shadow_pte_write_trap` is the whole cost of one trapped write,
# exit included.)

# %%
answer_ptemod = ex.reveal("ptemod HVM cycles")   # ← a number of cycles

# %%
r = run_hvm(workload("ptemod", 1000), P4, paging="shadow", timeline=False)
ex.add("ptemod HVM cycles", expected=r.total_cycles / 1000, unit="cycles",
       explain="10 + shadow_pte_write_trap (4000): one exit and a propagation per write")
ex.check("ptemod HVM cycles", answer_ptemod)

# %% [markdown]
# Each nanobenchmark repeats one operation in a kernel loop. **Predict** before you run: under
# `p4_vtx_2006`, which path runs the `syscall` benchmark faster, `"HVM"` or `"BT"`?

# %%
answer_syscall = ex.reveal("syscall winner")   # ← "HVM" or "BT"

# %%
rows = []
for name in NANOBENCHMARKS:
    s = workload(name, 1000)
    r = compare_paths(s, P4, paths=("native", "BT", "HVM"), timeline=False)
    rows.append((name, *(r[p].total_cycles / 1000 for p in ("native", "BT", "HVM"))))
print(f"{'benchmark':10s} {'native':>8s} {'BT':>8s} {'HVM':>8s}   cycles per iteration (p4_vtx_2006)")
for name, n, bt, hvm in rows:
    print(f"{name:10s} {n:8.0f} {bt:8.0f} {hvm:8.0f}")
by_name = {n: (bt, hvm) for n, _, bt, hvm in rows}
winner = "HVM" if by_name["syscall"][1] < by_name["syscall"][0] else "BT"
ex.add("syscall winner", expected=winner, explain="syscall does not exit under VT-x; BT must emulate the transition")
ex.check("syscall winner", answer_syscall)

# %% [markdown]
# What the paper found, qualitatively (the digits of its figure are not in our dataset — we could not
# source them, so we do not invent them):

# %%
for row in load_table("adams_agesen_2006"):
    if row["kind"] == "nanobenchmark":
        print(f"{row['benchmark']:9s} {row['platform']:4s} {row['finding']}")

# %% [markdown]
# BT pays for the same write only while a block is young: after `bt_adapt_threshold` traps,
# *adaptive translation* rewrites the writing instruction into a callout.

# %%
r = run_bt(workload("ptemod", 1000), P4, timeline=False)
print("traps:", r.counts["pte_write_traps"], " callouts:", r.counts["pte_write_callouts"],
      f" cycles per iteration: {r.total_cycles / 1000:.0f}")

# %% [markdown]
# ## 5. forkwait: the model next to the paper
#
# Process creation is page-table heavy: copying and tearing down page tables, copy-on-write faults,
# new address spaces. Under shadow paging each of these is an exit for HVM. Below, the model's
# slowdowns on forkwait beside the published times (Adams & Agesen 2006, *recalled* values).

# %%
fw = workload("forkwait")
res = compare_paths(fw, P4, timeline=False)
pub = {r["platform"]: r["value"] for r in load_table("adams_agesen_2006") if r["benchmark"] == "forkwait"}
print(f"{'path':8s} {'model slowdown':>15s} {'published s':>12s} {'published slowdown':>19s}")
for path, key in (("native", "native"), ("BT", "bt"), ("HVM", "hvm")):
    m = res[path].slowdown(res["native"])
    print(f"{path:8s} {m:15.1f} {pub[key]:12.1f} {pub[key] / pub['native']:19.1f}")
print(f"{'PV':8s} {res['PV'].slowdown(res['native']):15.1f} {'-':>12s} {'-':>19s}")

# %% [markdown]
# The *order* matches: BT beats HVM by a wide margin, and both lose to native. Where does HVM's time
# go? The breakdown by mechanism:

# %%
for path in ("BT", "HVM"):
    b = res[path].breakdown
    top = sorted(b.items(), key=lambda kv: -kv[1])[:4]
    print(path, " | ".join(f"{k} {v / res['native'].total_cycles:.1f}x" for k, v in top))
print("HVM exits by reason:", res["HVM"].exits)

# %% [markdown]
# ## 6. Explore
#
# Pick a workload, a preset and HVM's paging mode; move the costs. Bars are cycles by mechanism
# (click a legend entry to hide it). The comparer runs shorter workloads than the cells, to stay
# quick (forkwait: 60 units instead of 200); its first line says how many operations it costs, so
# its counts are 60/200 of the cells' above.

# %%
# NBVAL_IGNORE_OUTPUT
pc = PathComparer("forkwait", "p4_vtx_2006")
pc

# %% [markdown]
# ## 7. Nested paging changes the trade
#
# With EPT/NPT the guest owns its page tables: PTE writes, CR3 loads and guest page faults no
# longer exit. The price is paid on every TLB miss: the walk of a 4-level guest table over a
# 4-level nested table.
#
# **Predict:** how many memory references does one such TLB miss need (no walk caches)?

# %%
answer_refs = ex.reveal("nested walk refs")   # ← a number

# %%
ex.add("nested walk refs", expected=walk_refs("nested"), explain="(n+1)(m+1) - 1 with n = m = 4; natively 4")
ex.check("nested walk refs", answer_refs)
sh, ne = run_hvm(fw, KVM, paging="shadow", timeline=False), run_hvm(fw, KVM, paging="nested", timeline=False)
print(f"PTE-write exits: shadow {sh.counts['pte_write_exits']:,}  nested {ne.counts['pte_write_exits']:,}")
n_miss = fw.counts()[Op.TLB_MISS]
print(f"cycles per TLB miss: shadow {sh.breakdown['page walks'] / n_miss:.0f}  nested {ne.breakdown['page walks'] / n_miss:.0f}")

# %% [markdown]
# Under `modern_kvm` (faster exits, TPR shadow, nested paging) HVM is close to native on
# compute-bound and system-call-heavy work — the reason hardware virtualization won in the end:

# %%
for name in ("compute", "syscall", "web", "database", "forkwait"):
    s = workload(name)
    nat = run_native(s, KVM, timeline=False).total_cycles
    hv = run_hvm(s, KVM, paging="nested", timeline=False).total_cycles
    print(f"{name:10s} HVM+nested / native = {hv / nat:5.2f}")

# %% [markdown]
# **Exercise.** `database` and `forkwait` are the exceptions. `database`'s slowdown comes almost
# entirely from one mechanism.
# Which one? (a key of the breakdown, e.g. `"VM exits"`)

# %%
answer_db = ex.reveal("database mechanism")   # ← a mechanism name

# %%
s = workload("database")
nat = run_native(s, KVM, timeline=False)
hv = run_hvm(s, KVM, paging="nested", timeline=False)
extra = {k: hv.breakdown[k] - nat.breakdown[k] for k in hv.breakdown}
ex.add("database mechanism", expected=max(extra, key=extra.get),
       explain="many TLB misses, each a 24-reference 2D walk; large nested pages and walk caches help")
ex.check("database mechanism", answer_db)

# %% [markdown]
# ## Summary
#
# * HVM runs everything that does not exit at native speed — system calls included — but on a
#   first-generation VT-x every exit costs thousands of cycles, and without MMU support page-table
#   work exits constantly: forkwait and ptemod go to BT.
# * BT pays a little on many operations (system calls, indirect branches, translation) but turns
#   hot page-table writes into callouts.
# * PV groups its hypervisor interactions — Lab 4 measures how much that is worth.
# * Nested paging removes the page-table exits and moves the cost to TLB misses.

# %%
# NBVAL_IGNORE_OUTPUT
print(ex.summary())
