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
# # Lab 2 — Whose page table is it?
#
# Every memory access a program makes goes through a **page table**: the CPU splits the virtual
# address into four 9-bit indices, reads one 8-byte entry at each of four levels (L4 → L3 → L2 → L1),
# and finds the machine frame. The TLB remembers recent answers; a *TLB miss* means a walk.
#
# Inside a virtual machine there are two owners with a claim on those tables: the **guest kernel**,
# which builds and changes them, and the **hypervisor**, which must make sure a guest can only ever
# reach its own machine frames. There are three ways to settle the dispute, and you will run all
# three on the same guest work:
#
# | scheme | who writes the tables the CPU walks | the price |
# |---|---|---|
# | **PV direct paging** (Xen PV, Oracle VM) | the guest, but every change is a hypercall Xen validates | hypercalls on every page-table update — unless batched |
# | **shadow paging** | Xen, from the guest's tables, which it write-protects | a VM exit on every guest page-table write |
# | **nested paging** (EPT/NPT) | the guest, freely; the hardware walks two tables | up to 24 memory references per TLB miss |
#
# **How the exercises work.** Each exercise asks for a prediction *before* you run the code.
# Replace the `ex.reveal(...)` in the answer cell with your own number or word, run the check cell,
# and read the verdict (`✓` or `✗`). `ex.reveal(...)` gives the model's answer and is counted.

# %%
# NBVAL_IGNORE_OUTPUT
# Set-up: BokehJS from the installed package (no CDN), the simulator, the exercises.
import numpy as np
from vmlab import widgets
from vmlab.exercises import Exercises
from vmlab.guest.kernel import boot_kernel, MC_BATCH
from vmlab.hardware.mmu import describe_pte, va_indices, walk, make_pte, PTE_P, PTE_RW, PTE_US
from vmlab.hypervisor import constants as C
from vmlab.paging import direct
from vmlab.paging.direct import MMUEXT, pt_maddr
from vmlab.paging.nested import walk_2d, walk_refs, WalkCaches
from vmlab.guest.explore import compare_schemes
from vmlab.widgets.pagewalk import PageWalkExplorer
from vmlab.widgets.pt_traffic import TrafficExplorer
widgets.setup_notebook()
ex = Exercises("Lab 2")
VA = 0x4000_0000          # 1 GiB: where our process keeps its heap

# %% [markdown]
# ## 1. A page walk, natively
#
# First a guest that owns the machine (`native`): its kernel stores machine frame numbers straight
# into its tables. We create a process, map 8 pages at `VA`, and walk the address `VA + 0x3123`.
# vmlab's tables live *inside* simulated machine frames, so the walk really reads memory and every
# reference is counted. The x86-64 entry layout is:
#
# ```
#  63  62..52  51 ........ 12 11..9  8  7  6  5  4   3   2  1  0
#  NX  avail   frame number   avail  G  PS D  A  PCD PWT US RW P
# ```
#
# **Predict:** how many memory references does one walk make on a TLB miss?

# %%
answer_native = ex.reveal("native walk")   # ← a number

# %%
k = boot_kernel("native", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
pid = k.spawn()
k.map(pid, VA, 8)
va = VA + 0x3123
print("indices (L4, L3, L2, L1):", va_indices(va))
r = walk(k.mem, int(k.p2m[k.current.root]), va, write=True)
for level, (mfn, i) in zip((4, 3, 2, 1), r.path):
    print(f"L{level}: table in mfn {mfn:#x}, entry {i:3d} = {describe_pte(k.mem.table(mfn)[i])}")
print("-> data in machine frame", hex(r.frame), "after", r.refs, "references")
ex.add("native walk", expected=r.refs, explain="one entry per level, four levels")
ex.check("native walk", answer_native)

# %% [markdown]
# The walk set **A** (accessed) in every entry it used and **D** (dirty) in the last one, because it
# was a write — the kernel's page reclaim reads those bits. An address nobody mapped gives a page
# fault with an x86 error code (bit 0: protection vs not-present, bit 1: write, bit 2: user):

# %%
print("unmapped read :", walk(k.mem, int(k.p2m[k.current.root]), VA + 100 * 4096).fault)
k.map(pid, VA + 64 * 4096, 1, writable=False)
print("write to an RO page:", walk(k.mem, int(k.p2m[k.current.root]), VA + 64 * 4096, write=True).fault)
k.unmap(pid, VA + 64 * 4096, 1)   # leave the address space as it was (safe to run twice)

# %% [markdown]
# ## 2. PV direct paging: the guest's tables are the real ones
#
# A PV guest writes **machine** frame numbers into its tables, and the CPU walks them directly — so
# Xen must make sure the guest never maps a frame it does not own, and never gets a *writable*
# mapping of one of its own page tables (or it could write any entry it likes). Xen's rule, from
# `xen/arch/x86/mm.c`: every frame has one **type** at a time (L1, L2, L3, L4, writable, ...) with a
# **type count**, and a frame changes type only when its count is 0. Tables are mapped read-only;
# every change is an `mmu_update` hypercall that Xen validates.
#
# Let us be a malicious PV guest and try to map our own L1 page table *writable* into our address
# space. Any PV guest may call `mmu_update`: Xen checks the request against its type rules.
# **Predict:** which errno does Xen return? (`-1` EPERM, `-22` EINVAL, `-38` ENOSYS) Think about
# whether the guest lacks a *privilege*, calls something that does not *exist*, or asks for
# something the rules forbid.

# %%
answer_pt_rw = ex.reveal("writable page table")   # ← a negative number

# %%
g = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
p = g.spawn()
g.map(p, VA, 8)
g.flush()
l1_mfn = int(g.p2m[g.current.tables[(1, VA >> 21)]])
print("our L1 table is mfn", hex(l1_mfn), "type", int(g.mem.page_type[l1_mfn]), "type_count", int(g.mem.type_count[l1_mfn]))
out = {}
evil = make_pte(l1_mfn, PTE_P | PTE_RW | PTE_US)
rc = g.hv.hypercall(g.domid, "mmu_update", [(pt_maddr(l1_mfn, 20), evil)], 1, out)
print("rc =", rc, "|", out["reason"])
ex.add("writable page table", expected=C.EINVAL, explain="an RW mapping would need PGT_writable; the frame is PGT_l1")
ex.check("writable page table", answer_pt_rw)

# %% [markdown]
# A refused request changes **nothing** — not a table word, not a count. And `mmu_update` processes
# its requests in order and stops at the first bad one, reporting how many it *did*: the entries
# before it stay applied, exactly as in Xen.
#
# **Predict:** a batch of 6 requests whose 4th maps a page table writable. What is `done`?

# %%
answer_done = ex.reveal("done count")   # ← a number

# %%
reqs = [(pt_maddr(l1_mfn, 100 + i), make_pte(int(g.p2m[200 + i]), PTE_P | PTE_RW | PTE_US)) for i in range(6)]
reqs[3] = (pt_maddr(l1_mfn, 103), evil)
out = {}
rc = g.hv.hypercall(g.domid, "mmu_update", reqs, len(reqs), out)
print("rc =", rc, " done =", out["done"])
print("entries 100..105 present:", [bool(g.mem.table(l1_mfn)[100 + i] & PTE_P) for i in range(6)])
print("reference counts audit:", direct.audit(g.hv, g.domid) or "all consistent")
ex.add("done count", expected=out["done"], explain="requests 0, 1, 2 applied; 3 refused; 4, 5 never tried")
ex.check("done count", answer_done)

# %% [markdown]
# ## 3. Batching: paying for the hypervisor once per 32 updates
#
# Every `mmu_update` is a trip into Xen. Linux's PV code (`arch/x86/xen/multicalls.c`, pvops Linux
# from 2.6.23: today's guests, not the 2.6.18 XenLinux that Oracle VM 2.x guests ran) queues
# updates in **lazy MMU mode** in a per-CPU buffer of `MC_BATCH = 32` entries, and sends the whole
# buffer as one `multicall` when it is full, before a TLB flush or CR3 load, or before the guest
# touches memory.
#
# Mapping 1000 fresh pages at a 1 GiB-aligned address takes 1000 leaf updates plus 4 updates that
# link new tables: one L3, one L2 and two L1s (an L1 table holds 512 entries). **Predict:** how many hypercalls does that `map` make with
# batches of 32 (count the final flush of what is left)?

# %%
answer_batched = ex.reveal("hypercalls for 1000 pages")   # ← a number

# %%
for b in (1, MC_BATCH, 1024):
    g2 = boot_kernel("pv", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, batch_size=b)
    p2 = g2.spawn()
    c0 = g2.counters()
    g2.map(p2, VA, 1000)
    g2.flush()
    c = g2.counters()
    reasons = {r: n - c0["flush_reasons"].get(r, 0) for r, n in c["flush_reasons"].items() if n - c0["flush_reasons"].get(r, 0)}
    print(f"batch {b:4d}: {c['batches'] - c0['batches']:5d} hypercalls for {c['mc_hypercalls'] - c0['mc_hypercalls']} "
          f"updates; flush reasons {reasons}")
    if b == MC_BATCH:
        ex.add("hypercalls for 1000 pages", expected=c["batches"] - c0["batches"], explain="1004 updates: 31 full batches of 32 + 1 flush of the last 12")
ex.check("hypercalls for 1000 pages", answer_batched)

# %% [markdown]
# The page tables that result are identical whatever the batch size — vmlab's test suite checks that
# for random sequences of map, unmap, fork, exec and exit with batch sizes 1, 32 and 1024.
#
# ## 4. Nested paging: two tables, one walk
#
# With EPT/NPT the guest's tables hold **guest-physical** frame numbers, and the hypervisor keeps a
# second, *nested* table from guest-physical to machine frames. The guest may write its tables
# freely — no exits — but on a TLB miss the hardware must translate *every* guest-physical address it
# touches (CR3 names the first guest table with a guest-physical address, too) through the nested
# table, besides reading the guest's own entries.
#
# **Predict:** how many memory references does a cold nested walk make (4-level guest table, 4-level
# nested table)? Count the guest-physical addresses the walk meets first.

# %%
answer_nested = ex.reveal("nested walk")   # ← a number

# %%
h = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
hp = h.spawn()
h.map(hp, VA, 8)
w = walk_2d(h.nested, h.current.root, VA)
print("references:", w.refs, "  formula (n+1)(m+1)-1 =", walk_refs(4, 4))
print("guest entry reads:", sum(1 for s in w.steps if s[1] == 0), "  nested reads:", sum(1 for s in w.steps if s[1]))
ex.add("nested walk", expected=w.refs,
       explain="5 guest-physical addresses (4 guest tables, the data page) x 4 nested reads + 4 guest entry reads")
ex.check("nested walk", answer_nested)

# %% [markdown]
# **Predict:** with 2 MiB nested pages (so the nested walk has 3 levels), how many references?

# %%
answer_19 = ex.reveal("nested walk, 2 MiB nested pages")   # ← a number

# %%
explorer = PageWalkExplorer()   # (a fresh one: safe to run twice)
explorer.large.value = True
print(explorer.source.data["total"][0], "references with 2 MiB nested pages")
explorer.large.value = False
explorer.nested_tlb.value, explorer.pwc.value, explorer.warm.value = True, True, True
print(explorer.source.data["total"][0], "references with a warm nested TLB and page-walk cache")
explorer.nested_tlb.value, explorer.pwc.value, explorer.warm.value = False, False, False   # shown cold below
ex.add("nested walk, 2 MiB nested pages", expected=walk_refs(4, 3), explain="(4+1)(3+1)-1")
ex.check("nested walk, 2 MiB nested pages", answer_19)

# %% [markdown]
# The explorer draws the walk as a grid: rows are the guest's steps, columns the nested levels plus
# the guest's own entry. It opens on the cold walk with 4 KiB nested pages: all 24 references. Slide `step` to replay it; tick **2 MiB nested pages** (one fewer nested
# level) and the caches. A *nested TLB* remembers guest-physical → machine translations; a *page-walk
# cache* remembers the guest's upper-level entries. With **warm** on, a neighbouring page was walked
# first.

# %%
# NBVAL_IGNORE_OUTPUT
explorer

# %% [markdown]
# ## 5. Shadow paging: the hypervisor keeps the real tables
#
# Without EPT, Xen builds **shadow** tables from the guest's tables (guest frames replaced by machine
# frames) and points the real CR3 at them. A TLB miss is a plain 4-reference walk of the shadow. But
# every guest page that is shadowed is write-protected, so *each guest PTE write traps* and Xen
# propagates it. Shadows are built lazily, on the first miss that finds nothing (a *shadow fault*).
#
# Our process maps 100 pages and touches them all (so their L1 table is shadowed), then forks. Fork
# copies the entries into the child (whose tables are not shadowed yet) and removes write permission
# from each of the parent's 100 entries (copy-on-write). **Predict:** how many traps does the fork
# cause?

# %%
answer_traps = ex.reveal("shadow traps in fork")   # ← a number

# %%
s = boot_kernel("shadow", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
sp = s.spawn()
s.map(sp, VA, 100)
s.access(VA + np.arange(100) * 4096)
print("after touching:", {k: v for k, v in s.shadow.counters.items() if k in ("builds", "shadow_faults", "traps")})
t0 = s.shadow.counters["traps"]
child = s.fork(sp)
print("fork:", s.shadow.counters["traps"] - t0, "traps")
ex.add("shadow traps in fork", expected=s.shadow.counters["traps"] - t0,
       explain="one per write-protected parent PTE; the child's new tables are not shadowed yet")
ex.check("shadow traps in fork", answer_traps)

# %% [markdown]
# ## 6. Watch a fork under each scheme
#
# Now the same story under all three schemes: a shell builds a 256-page heap, touches it, forks; the
# child reads, execs a small program, and exits. The counts are exact; the cycles are *estimates*
# from vmlab's cost presets (`xen_pv` for PV, `modern_kvm` for the hardware-assisted schemes) — many
# of those numbers are ILLUSTRATIVE, so read the ratios, not the digits.

# %%
fork = compare_schemes("fork")["totals"]
cols = ("pt_writes", "hypercalls", "exits", "shadow_syncs", "tlb_misses", "walk_refs")
print(f"{'scheme':8s}" + "".join(f"{c:>14s}" for c in cols))
for i, sch in enumerate(fork["scheme"]):
    print(f"{sch:8s}" + "".join(f"{fork[c][i]:14,d}" for c in cols))

# %%
# NBVAL_IGNORE_OUTPUT
# Estimated cycles depend on the cost presets (datasets/tables/cost_presets.csv), so this cell is not checked.
for sch, cyc in zip(fork["scheme"], fork["cycles"]):
    print(f"{sch:8s} {cyc / 1000:10,.0f} kcycles")

# %% [markdown]
# Same guest work, same number of page-table writes — but PV pays in **hypercalls** (few, thanks to
# batching), shadow in **exits** (one per write to a shadowed table, plus shadow faults), and nested in
# **walk references** (six times as many per TLB miss).
#
# ## 7. Where does shadow paging pay, and where does nested paging pay?
#
# The explorer runs five scenarios: `fork`, `build` (one big address space), `switch` (two processes
# taking turns), `mmap_churn` (map/unmap in a loop) and `tlb_heavy` (few table changes, many TLB
# misses over a large footprint). Predict first; then try them in the explorer below, with the batch
# size.

# %% [markdown]
# **Predict:** which of `shadow` or `nested` is cheaper (fewer estimated cycles) for `mmap_churn`,
# and which for `tlb_heavy`? Answer with the scheme name.

# %%
answer_churn = ex.reveal("cheaper for mmap_churn")   # ← "shadow" or "nested"
answer_tlb = ex.reveal("cheaper for tlb_heavy")      # ← "shadow" or "nested"


# %%
# NBVAL_IGNORE_OUTPUT
# The estimated cycles behind the answer (they depend on the cost presets, so this cell is not checked).
def cheaper(scenario):
    t = compare_schemes(scenario, schemes=("shadow", "nested"))["totals"]
    for sch, cyc, ex_, refs in zip(t["scheme"], t["cycles"], t["exits"], t["walk_refs"]):
        print(f"  {scenario:10s} {sch:7s} {cyc / 1000:9,.0f} kcycles  {ex_:5d} exits  {refs:8,d} walk refs")
    return t["scheme"][int(np.argmin(t["cycles"]))]

cheapest = {scenario: cheaper(scenario) for scenario in ("mmap_churn", "tlb_heavy")}

# %%
ex.add("cheaper for mmap_churn", expected=cheapest["mmap_churn"], explain="page-table writes trap under shadow")
ex.add("cheaper for tlb_heavy", expected=cheapest["tlb_heavy"], explain="every TLB miss costs 24 references under nested")
ex.check("cheaper for mmap_churn", answer_churn)
ex.check("cheaper for tlb_heavy", answer_tlb)

# %%
# NBVAL_IGNORE_OUTPUT
traffic = TrafficExplorer()
traffic

# %% [markdown]
# VMware's measurements tell the same story: EPT up to 48% faster than shadow paging on MMU-heavy
# benchmarks and up to 600% on MMU microbenchmarks — but EPT raises the cost of a TLB miss, which is
# why large pages matter so much for it.
#
# ## 8. The guarantee behind all three
#
# vmlab's test suite checks, for hundreds of random sequences of guest operations, that PV direct,
# shadow and nested paging give the **same** guest-virtual → machine translation and the same page
# fault for every address — the schemes differ only in what they cost — and that no sequence of
# hypercalls from a domU ever leaves it a writable mapping of a page table or a mapping of a frame it
# does not own.

# %%
results = {}
for scheme in ("pv", "shadow", "nested"):
    kk = boot_kernel(scheme, memory_mib=16, host_memory_mib=256, dom0_mem_mib=32)
    a = kk.spawn(); kk.map(a, VA, 16); b = kk.fork(a); kk.switch_to(b); kk.unmap(b, VA, 4)
    inv = {int(m): pfn for pfn, m in enumerate(kk.p2m.tolist())}
    results[scheme] = [(inv.get(int(kk.translate(VA + i * 4096)[0]), None), kk.translate(VA + i * 4096, write=True)[1])
                       for i in range(8)]
print("pfn and write-fault code of the first 8 pages in the child, per scheme:")
for scheme, rows in results.items():
    print(f"  {scheme:7s}", rows)
print("identical:", results["pv"] == results["shadow"] == results["nested"])

# %% [markdown]
# ## Summary
#
# You walked a page table by hand, were refused by Xen's type rules, counted what batching saves,
# and watched the same guest work cost hypercalls (PV), exits (shadow) or walk references (nested).

# %%
# NBVAL_IGNORE_OUTPUT
print(ex.summary())
