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
# # Lab 7 — Running a server pool
#
# You are the administrator of a small Oracle VM 2.x installation: three servers, `ovs1`..`ovs3`,
# with the `/OVS` repository on one NFS server. Until now you have driven one server with `xm`.
# Oracle VM runs a **pool**: an **Oracle VM Agent** (`ovs-agent`, TCP 8899) in dom0 of every
# server, and the **Oracle VM Manager**, which holds the pool's inventory and sends every operation
# as a request to an agent. Each agent plays one or more roles: the **Server Pool Master**
# (the pool's contact point, which dispatches to the other agents and holds the cluster view), a
# **Utility Server** (the I/O-heavy work: copying templates and images) and **Virtual Machine
# Servers** (which run guests).
#
# In this lab you deploy guests from a template, see why a guest on local storage cannot move,
# fail a server and watch High Availability restart its guests, split the network with and
# without **fencing**, and empty a server for maintenance. Time is simulated: heartbeats, timeouts
# and copies advance a clock, never the wall clock, so every run gives the same answers.
#
# **How the exercises work.** Predict before you run. Replace `ex.reveal(...)` with your own number
# or string, run the check cell and read the verdict (`✓` or `✗`).

# %%
# NBVAL_IGNORE_OUTPUT
from vmlab import widgets
from vmlab.exercises import Exercises
from vmlab.ovm import Manager
from vmlab.ovm import constants as K
from vmlab.ovm.errors import HaRefused, Refused, VlanMissing
from vmlab.ovm.events import format_events
from vmlab.ovm.storage import copy_cost
from vmlab.ovm.views import guests_text, pool_text, servers_text
from vmlab.hardware.host import StorageKind
from vmlab.widgets.pool_dashboard import PoolDashboard
widgets.setup_notebook()
ex = Exercises("Lab 7")

# %% [markdown]
# ## 1. The pool, its roles and its repositories
#
# The first server becomes Server Pool Master, Utility Server and Virtual Machine Server at once;
# the others only run guests. `/OVS` is on NFS, shared by all three; each server also has a
# repository on its own local disk.

# %%
m = Manager.create_pool("pool1", servers=3, storage="nfs", memory_mib=4096, local_repo=True)
print(pool_text(m))

# %% [markdown]
# A repository has Oracle VM's fixed layout: guests in `running_pool`, templates in `seed_pool`,
# installation media in `iso_pool`, guests published as templates in `publish_pool` and disks
# shared between guests in `sharedDisk`.

# %%
m.import_template("OVM_EL5U3_X86_64_PVM", memory_mib=512, vcpus=1, image_mib=4096)
print(m.repo("OVS").listing())

# %% [markdown]
# ## 2. Guests from a template
#
# Creating a guest from a template is a copy: the Manager asks the **Utility Server** to copy the
# template's 4 GiB `System.img` into `running_pool/<name>/`, then writes a new `vm.cfg` with the
# guest's own name, uuid and MAC. On NFS, the Utility Server reads the image over the network and
# writes it back over the network. Gigabit Ethernet is full duplex, so reading and writing overlap;
# TCP carries 1448 payload bytes in every 1538 bytes on the wire.
#
# **Predict:** how many seconds does the copy of the 4096 MiB image take?

# %%
answer_copy = ex.reveal("copy seconds")   # ← your prediction, e.g. 4096 * 2**20 / (1000e6 / 8 * 1448 / 1538)

# %%
web1, cost = m.create_from_template("OVM_EL5U3_X86_64_PVM", "web1", ha=True)
print(cost)
ex.add("copy seconds", expected=round(cost.seconds, 1), tolerance=1.0, unit="s",
       explain="4096 MiB / 117.7 MB/s of TCP goodput: the read and the write share the full-duplex link")
ex.check("copy seconds", answer_copy)

# %% [markdown]
# Every step went through an agent: the copy through the Utility Server's agent, the start through
# the agent of the server the Manager picked (the one with the most free memory). Here is the
# rewritten `vm.cfg` — the same file xm reads:

# %%
print(m.vm_cfg("web1"))
print("agent requests on ovs1:", m.agents["ovs1"].log)

# %% [markdown]
# Three more guests from the same template, and one guest — `scratch` — on `ovs1`'s **local** disk.

# %%
m.create_from_template("OVM_EL5U3_X86_64_PVM", "web2", ha=True)
m.create_from_template("OVM_EL5U3_X86_64_PVM", "db1", memory_mib=1024, ha=True)
m.create_from_template("OVM_EL5U3_X86_64_PVM", "web3", server="ovs2", ha=True)
m.create_from_template("OVM_EL5U3_X86_64_PVM", "scratch", repo="local@ovs1", server="ovs1")
print(guests_text(m))
print()
print(servers_text(m))

# %% [markdown]
# ## 3. A guest on local storage stays where it is
#
# Live migration moves a guest's memory, not its disk: the target must open the same image. No
# other server can read `ovs1`'s local disk, so the Manager refuses before anything moves — and HA,
# which would restart the guest *elsewhere*, is refused for the same reason.

# %%
try:
    m.migrate("scratch", "ovs2")
except Refused as e:
    print("migrate:", e)
try:
    m.set_guest_ha("scratch", True)
except HaRefused as e:
    print("HA:", e)

# %% [markdown]
# ## 4. A server fails
#
# HA must be switched on for the pool **and** for each guest (Oracle VM 2.2). The servers write a
# **disk heartbeat** every 2 s (OCFS2's `O2HB_REGION_TIMEOUT_MS`) and exchange network keepalives
# every 2 s. A server is **dead** once its disk heartbeat has stayed unchanged for
# `O2HB_DEFAULT_DEAD_THRESHOLD` − 1 heartbeats in a row (the threshold is 31, the
# `O2CB_HEARTBEAT_THRESHOLD` of `/etc/default/o2cb`). Only
# then does the master restart the dead server's HA guests, in name order, each on a surviving
# server with the memory — its **preferred** servers first, then the one with the **most free
# memory**.
#
# `ovs2` is about to lose power. **Predict:** how many seconds after the failure is it declared dead?

# %%
answer_dead = ex.reveal("seconds to dead")   # ← your prediction

# %%
m.set_pool_ha(True)
m.set_guest_ha("web2", True, preferred=("ovs3",))
web2_dom = m.agents["ovs2"].xm.lookup("web2")
m.pool.servers["ovs2"].guest_write(web2_dom.domid, range(20_000))
print(servers_text(m))
on_ovs2 = sorted(g.name for g in m.guests.values() if g.server == "ovs2")
print("guests on ovs2:", on_ovs2)

# %% [markdown]
# `web2` has been busy: it filled 20,000 pages (78 MiB) of page cache. And you have told the Manager
# that `web2` should preferably run on `ovs3`.
#
# **Predict** where each of `ovs2`'s guests will be restarted: `web2` first, then `web3` (use the
# free memory above; a guest placed on a server takes its memory before the next one is placed).

# %%
answer_web2 = ex.reveal("web2 lands on")   # ← "ovs1" or "ovs3"
answer_web3 = ex.reveal("web3 lands on")   # ← "ovs1" or "ovs3"

# %%
t_fail = m.now_s
m.fail_server("ovs2")
m.advance(90)
print(format_events(m.events, kinds={"fault", "heartbeat-missed", "dead", "lost", "restart"}))
dead_at = next(e.time_s for e in m.events if e.kind == "dead")
ex.add("seconds to dead", expected=round(dead_at - t_fail, 1), tolerance=0.5, unit="s",
       explain="(31 - 1) x 2 s of unchanged disk heartbeat; the 30 s network timeout alone is not enough")
ex.check("seconds to dead", answer_dead)
ex.add("web2 lands on", expected=m.guests["web2"].server, explain="its preferred server has room")
ex.check("web2 lands on", answer_web2)
ex.add("web3 lands on", expected=m.guests["web3"].server,
       explain="no preference: most free memory once web2 took 512 MiB of ovs3")
ex.check("web3 lands on", answer_web3)

# %% [markdown]
# The guests run again — but a restart is a **boot from the disk image**. Whatever a guest had in
# memory (its page cache, sessions, uncommitted work) died with `ovs2`. Each page of memory carries
# a content stamp, so we can count what survived. **Predict:** how many of `web2`'s memory pages
# from before the failure are in its memory now?

# %%
answer_kept = ex.reveal("pages kept")   # ← your prediction

# %%
import numpy as np
g = m.guests["web2"]
hv = m.pool.servers[g.server]
dom = m.agents[g.server].xm.lookup("web2")
now = set(hv.memory.content[dom.mfns()].tolist()) - {0}
stamp_owner = {int(s) >> 48 for s in now}          # a stamp names the domid that wrote it
kept = sum(1 for s in now if (int(s) >> 48) != dom.domid)
print(f"web2 now runs on {g.server} as domain {dom.domid}; pages with content: {len(now)}, written by domids {sorted(stamp_owner)}")
print([e.detail for e in m.events if e.kind == "lost" and e.guest == "web2"][0])
ex.add("pages kept", expected=kept, unit="pages", explain="an HA restart boots the guest again from its disk")
ex.check("pages kept", answer_kept)

# %% [markdown]
# ## 5. A network partition, without and with fencing
#
# Now the dangerous failure: `ovs3` is cut off from the other servers' network, but it still sees
# the shared storage and keeps running `db`. Without **fencing**, the master declares `ovs3` dead as
# soon as the network heartbeat times out (30 s, `O2CB_IDLE_TIMEOUT_MS`) and restarts `db` on
# another server — while the first `db` is still writing the same image.
#
# With fencing, OCFS2 decides **quorum** when the network times out: the bigger side survives (an
# even split keeps the side with the lowest node number), and the other side **fences itself** —
# it reboots, so it can no longer write shared images. Only after its disk heartbeat has gone quiet
# for 60 s does the master restart `db`.
#
# Disk images carry content stamps too: every start of a guest mounts its image under a new epoch,
# and every extent written is stamped with it. `fsck` finds extents from two mounts that were open at
# the same time. **Predict:** without fencing, is `db`'s image `"clean"` or `"corrupt"` after the
# network heals?

# %%
answer_split = ex.reveal("without fencing")   # ← "clean" or "corrupt"

# %%
def partition_case(fencing):
    p = Manager.create_pool("lab", servers=3, storage="nfs", memory_mib=4096, fencing=fencing)
    p.import_template("EL5", memory_mib=512, image_mib=1024)
    p.create_from_template("EL5", "db", server="ovs3", ha=True)
    p.set_pool_ha(True)
    p.isolate("ovs3")
    p.advance(120)
    p.heal()
    return p, p.image(p.guests["db"]).fsck()

unsafe, report_unsafe = partition_case(fencing=False)
safe, report_safe = partition_case(fencing=True)
print("without fencing:")
print(format_events(unsafe.events, kinds={"fault", "dead", "fence", "restart", "split-brain"}))
print(report_unsafe)
print("\nwith fencing:")
print(format_events(safe.events, kinds={"fault", "dead", "fence", "restart", "split-brain"}))
print(report_safe)
ex.add("without fencing", expected="clean" if report_unsafe.clean else "corrupt",
       explain="two instances of db wrote one image at once: their stamps interleave")
ex.check("without fencing", answer_split)

# %% [markdown]
# ## 6. Maintenance: empty a server
#
# Before you patch `ovs1`, put it in **maintenance**: the Manager live-migrates its guests away. It
# runs at most *N* migrations at a time over the pool's gigabit link, so each of them gets a share
# of it (link / N), and a new wave starts when the previous one ends. The local `scratch` guest
# cannot move and is refused, with its reason.
#
# `ovs2` has been repaired: `heal` ends every fault and it rejoins the pool, empty. A last guest,
# `web4`, has just been deployed on `ovs1`. One idle 512 MiB guest alone over the whole link takes
# about this long:

# %%
m.heal()
m.create_from_template("OVM_EL5U3_X86_64_PVM", "web4", server="ovs1")
one = copy_cost(StorageKind.NFS, 512 << 20)
print(f"512 MiB at TCP goodput over gigabit: {one.seconds:.1f} s (plus a few ms of pre-copy rounds)")
print(servers_text(m))

# %% [markdown]
# **Predict:** with `N = 2`, how many seconds does evacuating `ovs1` take in total? (Count the
# guests on `ovs1` above and their memory; a wave lasts as long as its slowest migration.)

# %%
answer_evac = ex.reveal("evacuation seconds")   # ← your prediction

# %%
evac = m.maintenance("ovs1", max_concurrent=2)
print(evac)
ex.add("evacuation seconds", expected=round(evac.total_s, 1), tolerance=0.15 * evac.total_s, unit="s",
       explain="wave 1: two 512 MiB guests share the link (~9.2 s); wave 2: the third has it alone (~4.6 s)")
ex.check("evacuation seconds", answer_evac)
print(servers_text(m))

# %% [markdown]
# ## 7. VLANs
#
# A network is a VLAN-tagged bridge on each server: `xenbr0` carries untagged traffic, and VLAN
# *vid* is a sub-interface `peth0.<vid>` with its own bridge `xenbr0.<vid>`. Guests on different
# VLANs share no bridge and cannot reach each other. A migration or HA restart keeps the guest's MAC
# and IP, so the target must have the guest's VLAN — checked **before** anything moves.

# %%
m.leave_maintenance("ovs1")
m.add_vlan(10, ["ovs1", "ovs3"])
m.add_vlan(20)
m.create_from_template("OVM_EL5U3_X86_64_PVM", "app10", server="ovs1", vlan=10)
m.create_from_template("OVM_EL5U3_X86_64_PVM", "app20", server="ovs1", vlan=20)
print("app10 -> app20:", m.can_reach("app10", "app20"))
try:
    m.migrate("app10", "ovs2")
except VlanMissing as e:
    print("migrate:", e)
print(servers_text(m))

# %% [markdown]
# ## 8. The pool dashboard
#
# Servers with their roles and memory by owner, and the timeline of everything the master saw. Pick
# a server, fail or isolate it, let time pass (`advance 30 s`) and watch heartbeats go missing, the
# server die or fence, and its guests restart. `heal` brings every server back.

# %%
# NBVAL_IGNORE_OUTPUT
PoolDashboard(m)

# %% [markdown]
# ## Summary
#
# The Manager drives the pool only through the agents; the Utility Server does the copies; the
# master restarts guests after the cluster has **proved** a server dead — 60 s of silent disk
# heartbeat — and fencing is what makes that proof safe: a server that has lost quorum or its own
# heartbeat removes itself, so one image never has two writers. HA restarts cost the guest its
# memory; live migration (maintenance) keeps it, but needs shared storage, room and the same VLAN
# on the target.

# %%
# NBVAL_IGNORE_OUTPUT
print(ex.summary())
