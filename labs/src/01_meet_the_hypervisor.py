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
# # Lab 1 — Meet the hypervisor: dom0 and domU
#
# You are the new administrator of an **Oracle VM Server** (Xen 3.x). In this lab you boot a
# simulated server, watch **Xen** take its share of the machine, watch **dom0** — the privileged
# management domain — come up and claim the hardware, and then create, list, pause, balloon, save
# and destroy **domU** guests with the same `xm` verbs the real server uses.
#
# The rules you will meet are Xen's own:
#
# * dom0 (domid 0) is a full Linux kernel that *detects the hardware*, owns the device drivers, and
#   creates, destroys and controls guests. It presents guests a common set of virtual hardware.
# * domUs are unprivileged: no direct access to hardware, started from dom0.
# * Memory is handed out in 4 KiB **machine frames**; every frame has exactly one owner —
#   Xen, a domain, or nobody (free).
#
# **How the exercises work.** Each exercise asks for a prediction *before* you run the code.
# Replace the `ex.reveal(...)` in the answer cell with your own number or expression, run the check
# cell, and read the verdict (`✓` or `✗`). Stuck? Put `ex.reveal(...)` back: it gives the model's
# answer, and the summary at the end counts it as revealed.

# %%
# NBVAL_IGNORE_OUTPUT
# Set-up: load BokehJS from the installed package (no CDN needed) and import the simulator.
import os, tempfile
from vmlab import widgets
from vmlab.hardware.host import Host, HostSpec
from vmlab.hardware.memory import mib_from_frames, frames_from_mib
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.hypervisor import constants as C
from vmlab.toolstack.xm import Toolstack
from vmlab.toolstack.config import parse_xm_config, virt_install
from vmlab.exercises import Exercises
from vmlab.widgets.dashboard import DomainDashboard
widgets.setup_notebook()
os.chdir(tempfile.mkdtemp(prefix="vmlab-lab1-"))   # config and save files go to a scratch folder
ex = Exercises("Lab 1")

# %% [markdown]
# ## 1. Boot a server
#
# Our server `ovs1` has 4 CPUs and 8 GiB of RAM. When Xen boots it keeps frames for itself
# (its image, heap and the *frame table* that describes every frame). vmlab uses an illustrative
# rule — **16 MiB plus 1/64 of RAM** — because the real figure depends on the Xen build. Then Xen
# builds dom0 with `dom0_mem=512M`.
#
# **Predict:** how many MiB are left free for guests right after boot?

# %%
answer_free_mib = ex.reveal("free after boot")   # ← replace with your prediction, e.g. 8192 - ...

# %%
host = Host(HostSpec(name="ovs1", pcpus=4, memory_mib=8192))
hv = Hypervisor(host, dom0_mem_mib=512)
print("\n".join(hv.xen_console))
ex.add("free after boot", expected=mib_from_frames(hv.memory.free_frames), unit="MiB",
       explain="8192 - (16 + 8192/64) for Xen - 512 for dom0")
ex.check("free after boot", answer_free_mib)

# %% [markdown]
# ## 2. dom0 detects the hardware
#
# dom0's kernel loads a driver for every device. Xen 3's `network-bridge` script renames the NIC
# `eth0` to `peth0` and plugs it into a software bridge `xenbr0`; guests' virtual NICs will plug
# into that bridge. The guests' disk images live in the `/OVS` repository — on this server an NFS
# share, which is what will later let guests migrate.

# %%
for dev in hv.hardware:
    print(f"{dev.kind:5s} {dev.name:6s} driver {dev.driver:10s} {dev.detail}")
print()
print("\n".join(hv.dom0.console))

# %% [markdown]
# ## 3. `xm list`
#
# `xm` is the toolstack: it runs in dom0 and turns each verb into **privileged hypercalls**
# (`domctl`, `memory_op`, `sched_op`). `xm list` prints Xen 3's exact format. The State column has
# six positions `rbpscd`: **r**unning, **b**locked, **p**aused, **s**hutdown, **c**rashed, **d**ying.

# %%
xm = Toolstack(hv)
print(xm.list_text())

# %% [markdown]
# ## 4. Create guests — from an xm config file and from virt-install
#
# An xm config file is Python-syntax assignments. vmlab parses it safely (it never runs it) and
# rejects unknown keys with a suggestion.

# %%
with open("vm1.cfg", "w") as f:
    f.write('''
name   = "vm1"
memory = 512
vcpus  = 2
kernel = "/boot/vmlinuz-2.6.18-xen"
disk   = ["file:/OVS/running_pool/vm1/System.img,xvda,w"]
vif    = ["bridge=xenbr0"]
''')
vm1 = xm.create("vm1.cfg")
web = xm.create(virt_install(name="web", ram=1024, vcpus=1, paravirt=True))
win = xm.create(virt_install(name="win2003", ram=1024, hvm=True))
print(xm.list_text())

# %%
# A typo in a config file is refused with one line, and nothing is created:
from vmlab.errors import VmlabError
try:
    parse_xm_config("name = 'vm9'\nmemroy = 256\nkernel = '/boot/vmlinuz'")
except VmlabError as e:
    print(e)
print(len(hv.domains), "domains")

# %% [markdown]
# Each guest got virtual devices whose **backends are in dom0**: a `vif` on `xenbr0` and a `vbd`
# served from a file on the NFS repository.

# %%
for d in vm1.devices:
    print(f"{d.kind} {d.name:6s} -> backend in dom{d.backend_domid}: {d.backend}")

# %% [markdown]
# ## 5. The memory map
#
# Below, every machine frame of the server is drawn, coloured by its owner: Xen (grey), dom0 (dark
# blue), each guest, and free frames (light). Use the buttons to create, pause, balloon and destroy
# guests and watch the map change. (If you are reading this without a running kernel, run the cell.)

# %%
# NBVAL_IGNORE_OUTPUT
dash = DomainDashboard(xm)
dash


# %%
def frames_by_owner(dash):
    totals = {}
    for label, n in zip(dash.source.data["label"], dash.source.data["frames"]):
        totals[label] = totals.get(label, 0) + n
    return totals

print(frames_by_owner(dash))

# %% [markdown]
# **Predict:** how many machine frames does `vm1` (512 MiB) own? A frame is 4 KiB.

# %%
answer_vm1_frames = ex.reveal("vm1 frames")   # ← your prediction

# %%
ex.add("vm1 frames", expected=frames_from_mib(512), unit="frames", explain="512 MiB / 4 KiB")
ex.check("vm1 frames", answer_vm1_frames)

# %% [markdown]
# Driving the dashboard from code does the same as clicking: create a guest, then destroy it, and
# the map follows.

# %%
dash.name.value, dash.memory.value = "db", 2048
dash.create()
print("after create: ", frames_by_owner(dash).get("db"), "frames for db;", frames_by_owner(dash)["free"], "free")
dash.target.value = "db"
dash.destroy()
print("after destroy:", frames_by_owner(dash).get("db"), "frames for db;", frames_by_owner(dash)["free"], "free")

# %% [markdown]
# ## 6. Pause, CPU time and the credit scheduler
#
# Guests that have work are **r**unning; idle ones are **b**locked. Let `web` get busy and `vm1`
# be half busy, advance simulated time by 60 s, and look at the Time(s) column. Xen's credit
# scheduler gives every domain the same weight (256), so CPU is shared fairly *between domains*.
#
# Read the Time(s) column with the VCPUs column: Time(s) is CPU time summed over a domain's
# vCPUs. `vm1` has **2 vCPUs**, each busy half the time (2 x 0.5 x 60 s = 60 s); `web` has one vCPU,
# busy all the time (1 x 1.0 x 60 s = 60 s). Same CPU time, different shapes of load.

# %%
hv.set_load(web.domid, 1.0)
hv.set_load(vm1.domid, 0.5)
hv.advance(60)
xm.pause("web")
print(xm.list_text())

# %% [markdown]
# **Predict:** what will the State column of `web` read after `xm unpause web`? (six characters)

# %%
answer_state = ex.reveal("state after unpause")   # ← e.g. "------"

# %%
if xm.list("web")[0].flags == "--p---":   # (safe to run twice)
    xm.unpause("web")
ex.add("state after unpause", expected=xm.list("web")[0].flags, explain="it has work again, so running")
ex.check("state after unpause", answer_state)

# %% [markdown]
# ## 7. Ballooning: a target, not an order
#
# `xm mem-set` only sets a **target**. The guest's balloon driver gives pages back to Xen with
# `memory_op(decrease_reservation)` — but Linux's driver refuses to go below a floor
# (`minimum_target` in the Xen balloon driver: for a guest of 512 MiB to 2 GiB it is
# 104 MiB + 1/8 of its maximum). An HVM guest without PV drivers has no balloon driver at all.
#
# **Predict:** after `xm mem-set vm1 64`, what does the Mem column show for vm1 (MiB)?

# %%
answer_balloon = ex.reveal("vm1 after mem-set 64")   # ← your prediction

# %%
xm.mem_set("vm1", 64)
xm.mem_set("win2003", 256)      # HVM without PV drivers: ignored, no balloon driver
print(xm.list_text())
ex.add("vm1 after mem-set 64", expected=xm.list("vm1")[0].memory_mib, unit="MiB", explain="104 + 512/8")
ex.check("vm1 after mem-set 64", answer_balloon)

# %% [markdown]
# ## 8. A domU is not allowed to control domains
#
# Every guest request enters Xen through the hypercall table, which checks privilege. When a domU
# tries a `domctl` — here, destroying dom0 — Xen refuses it and carries on.
#
# **Predict:** which negative errno does the guest get? (`-1` is EPERM, `-22` EINVAL, `-3` ESRCH)

# %%
answer_errno = ex.reveal("domU domctl")   # ← your prediction

# %%
rc = hv.hypercall(vm1.domid, "domctl", C.XEN_DOMCTL["destroydomain"], 0)
print("rc =", rc)
print("last trace event:", hv.trace.events[-1])
print(xm.list_text())
ex.add("domU domctl", expected=C.EPERM, explain="domctl is privileged: dom0 only")
ex.check("domU domctl", answer_errno)

# %% [markdown]
# ## 9. Save, restore and destroy
#
# `xm save` suspends a guest and writes its memory and state to a file; the guest is gone from
# `xm list`. `xm restore` brings it back — with a **new domid** — and every page with exactly the
# content it had. vmlab checks that page by page with content stamps.

# %%
import numpy as np
before = hv.memory.content[vm1.mfns()].copy()
xm.save("vm1", "vm1.sav")
print(xm.list_text())
vm1 = xm.restore("vm1.sav")
after = hv.memory.content[vm1.mfns()]
print(xm.list_text())
print("pages identical after restore:", bool(np.array_equal(before, after)), f"({before.size} pages)")

# %% [markdown]
# ## 10. Stopping an HVM guest: from outside, or cooperatively with PV drivers
#
# `xm shutdown` (xend's `XendDomainInfo.shutdown`) always writes `control/shutdown` into the guest's
# xenstore directory. A PV guest's kernel watches that node and stops itself with
# `SCHEDOP_shutdown`. An unmodified HVM guest watches nothing, so xend then asks Xen for
# `HVM_PARAM_CALLBACK_IRQ`: 0 means no PV drivers, and dom0 shuts the domain down **from outside**
# (`xc.domain_shutdown`, the `SCHEDOP_remote_shutdown` hypercall) — a hard power-off (and, for
# `xm save`, a suspend the guest never notices).

# %%
NAMES = {f"hvm_op({C.HVMOP_get_param})": "hvm_op HVMOP_get_param(HVM_PARAM_CALLBACK_IRQ)",
         f"sched_op({C.SCHEDOP_remote_shutdown})": "sched_op SCHEDOP_remote_shutdown   (from outside)",
         f"sched_op({C.SCHEDOP_shutdown})": "sched_op SCHEDOP_shutdown          (the guest itself)"}

def stop_and_show(name):
    n = len(hv.trace.events)
    xm.shutdown(name)
    for e in hv.trace.events[n:]:
        if e.kind == "hypercall" and e.detail in NAMES:
            print(f"  dom{e.domid:<3d} {NAMES[e.detail]}")

print("win2003 (no PV drivers):")
stop_and_show("win2003")

# %% [markdown]
# When an HVM guest loads Xen's **PV drivers** (`load_pv_drivers`: the platform-pci driver binds to
# the Xen platform PCI device, sets `HVM_PARAM_CALLBACK_IRQ`, and blkfront/netfront replace the
# emulated disk and NIC), xend leaves `control/shutdown` to the guest — and the balloon driver
# comes with them, so `xm mem-set` now works too.

# %%
from vmlab.guest.pv_on_hvm import load_pv_drivers
el5 = xm.create(virt_install(name="el5hvm", ram=512, hvm=True))
load_pv_drivers(hv, el5.domid)
print("callback via:", hex(el5.hvm_params[C.HVM_PARAM_CALLBACK_IRQ]))
print("after mem-set 256:", xm.mem_set("el5hvm", 256), "MiB")
print("el5hvm (PV drivers):")
stop_and_show("el5hvm")
print(xm.list_text())
hv.check_invariants()   # every frame has exactly one owner; owned + free == total
print("invariants hold")

# %% [markdown]
# ## 11. The same from the command line
#
# In a notebook, `%xm` runs xm verbs on this notebook's server. In a terminal, `vmlab xm ...` does
# the same on a server kept in a state file between calls (try `vmlab xm list` in a terminal).

# %%
from vmlab.magics import register_xm_magic
register_xm_magic(xm)
# %xm vcpu-set vm1 1
# %xm list vm1
# %xm pause dom99

# %% [markdown]
# ## Summary
#
# You met the three owners of machine memory (Xen, dom0, domUs), dom0's hardware and backends,
# the hypercall gate and its privilege check, and the xm life cycle. Next: **Lab 2** looks inside a
# guest's page tables.

# %%
# NBVAL_IGNORE_OUTPUT
print(ex.summary())
