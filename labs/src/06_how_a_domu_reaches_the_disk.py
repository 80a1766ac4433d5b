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
# # Lab 6 — How a domU reaches the disk
#
# The Oracle VM Server manual says dom0 "provides access to much of the system hardware" and
# "presents guests with a set of common virtual hardware", while a domU has **no direct access**
# to devices. So when a PV guest writes a block to `xvda`, who touches the disk, and how does the
# data get there?
#
# Xen's answer has four parts, and this lab builds each one:
#
# 1. **Grant tables** — a domain lets one other domain map one of its frames. A mapped grant is the
#    *only* way an unprivileged domain reaches a frame it does not own (dom0 can also map any
#    guest frame through privileged foreign mappings: save, migration and qemu-dm use them).
# 2. **Event channels** — virtual interrupts: one bit per port, a mask bit, and a per-vCPU mask
#    that is the PV guest's interrupt flag.
# 3. **Xenstore** — dom0's little database where the two halves of a device find each other.
# 4. **Shared rings** (`io/ring.h`) — requests one way, responses the other, with *notification
#    suppression* so a busy partner is not interrupted.
#
# On top of them sit the **split drivers**: `blkfront` in the guest, `blkback` in dom0 over a
# disk image on the host, `netfront`/`netback` over the dom0 bridge. At the end you compare all
# this with an **HVM** guest, whose disk is an emulated IDE controller.
#
# Answer each prediction *before* running the check; `ex.reveal(...)` gives the model's answer.

# %%
# NBVAL_IGNORE_OUTPUT
from vmlab import widgets
from vmlab.exercises import Exercises
from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.io import io_system, XenstoreError
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, vbd_devid
from vmlab.io.explore import io_compare
from vmlab.io.event_channel import EVTCHNOP_send
from vmlab.io.grant_table import (GNTMAP_host_map, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref,
                                  ENTRIES_PER_GRANT_FRAME, GNTTAB_NR_RESERVED_ENTRIES)
from vmlab.io.system import frame_access
from vmlab.io.ring import BLKIF_RING_SIZE, BackRing, FrontRing, SharedRing
from vmlab.toolstack.config import parse_xm_config
from vmlab.toolstack.xm import Toolstack
from vmlab.widgets.io_explorer import IoExplorer
from vmlab.widgets.ring import RingVisualizer
widgets.setup_notebook()
ex = Exercises("Lab 6")

# %% [markdown]
# ## 1. Create a guest with a disk and a network card
#
# An ordinary xm config: one disk image on the `/OVS` repository and one vif on `xenbr0`.
# `xm create` now does what xend and the hotplug scripts do: it writes a **backend** directory
# under dom0 and a **frontend** directory under the guest in xenstore, and the two drivers run the
# Xenbus handshake until both say `Connected` (state 4).

# %%
xm = Toolstack(Hypervisor(Host(HostSpec(name="ovs1", pcpus=4, memory_mib=4096)), dom0_mem_mib=512))
hv = xm.hv
io = io_system(hv)
vm1 = xm.create(parse_xm_config('''
name = "vm1"
memory = 256
kernel = "/boot/vmlinuz-2.6.18-xen"
disk = ["file:/OVS/running_pool/vm1/System.img,xvda,w"]
vif = ["bridge=xenbr0,mac=00:16:3e:00:00:01"]
'''))
print(xm.list_text())
for d in vm1.devices:
    print(f"{d.kind:4s} {d.name:8s} -> {d.backend}")

# %% [markdown]
# Here is what the guest's frontend published, and what dom0's backend published, for the disk.
# `xvda` is device id 202·256 = 51712 (major 202 is Xen's virtual block device).

# %%
print(io.xenstore.ls(f"/local/domain/{vm1.domid}/device/vbd"))
print("---")
print(io.xenstore.ls(f"/local/domain/0/backend/vbd/{vm1.domid}"))

# %% [markdown]
# Xenstore has owners and permissions. The frontend directory belongs to the guest (dom0 may read
# it), the backend's to dom0 (the guest may read it). A second guest sees neither:

# %%
vm2 = xm.create(parse_xm_config('name = "vm2"\nmemory = 128\nkernel = "/boot/vmlinuz-2.6.18-xen"'))
xs = io.xenstore
print("vm1 reads its backend's sector count:", xs.read(vm1.domid, f"/local/domain/0/backend/vbd/{vm1.domid}/51712/sectors"))
try:
    xs.read(vm2.domid, f"/local/domain/{vm1.domid}/device/vbd/51712/ring-ref")
except XenstoreError as e:
    print("vm2 ->", e.name)

# %% [markdown]
# ## 2. Grants: the only door into another domain's memory
#
# The frontend's `ring-ref` is a **grant reference**: an index into vm1's grant table, whose entry
# says "domain 0 may map frame *F*". A v1 entry is 8 bytes, grant frames are 4 KiB pages, and the
# first 8 references are reserved (0 for the console ring, 1 for the xenstore ring).
#
# **Predict:** vm1's grant table starts with 4 frames. How many grant references can its drivers
# hand out before the table must grow?

# %%
answer_refs = ex.reveal("grant refs in 4 frames")   # ← a number

# %%
ex.add("grant refs in 4 frames", expected=4 * ENTRIES_PER_GRANT_FRAME - GNTTAB_NR_RESERVED_ENTRIES,
       explain="4 x 512 entries minus the 8 reserved ones")
ex.check("grant refs in 4 frames", answer_refs)

# %% [markdown]
# Watch the rule at work. vm2 tries to touch a frame of vm1's memory: refused. vm1 grants that
# frame to dom0; dom0 maps it with `grant_table_op` (hypercall 20) and may then reach it; vm1
# cannot take the grant back while it is mapped; after the unmap the door is shut again.

# %%
pfn = io.alloc_pages(vm1.domid, 1)[0]
mfn = io.mfn(vm1.domid, pfn)
print("vm2 touches vm1's frame      :", frame_access(hv, vm2.domid, mfn))
ref = io.grants.table(vm1.domid).grant_foreign_access(0, mfn)
out = {}
hv.hypercall(0, "grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ref, "dom": vm1.domid, "flags": GNTMAP_host_map}], 1, out)
print("dom0 maps grant", ref, "           : status", out["status"][0])
print("dom0 touches the frame now   :", frame_access(hv, 0, mfn, write=True))
print("vm1 revokes while mapped     :", io.grants.table(vm1.domid).end_foreign_access(ref))
hv.hypercall(0, "grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": out["handle"][0]}], 1, {})
print("vm1 revokes after the unmap  :", io.grants.table(vm1.domid).end_foreign_access(ref))
print("dom0 touches the frame again :", frame_access(hv, 0, mfn))

# %% [markdown]
# (-1 is `-EPERM`.)
#
# ## 3. One write, end to end
#
# The guest writes two pages to sector 0 and reads them back into two other pages. blkfront grants
# each buffer page (read-only for a write: dom0 only reads it), puts one request on the ring and
# notifies dom0 over the event channel. blkback maps the granted pages into dom0, writes the
# image, gives the pages back, and answers the guest.
#
# **Predict:** how many hypercalls does blkback make to serve this one two-page write request,
# from taking it off the ring to telling the guest it is done?

# %%
answer_hcalls = ex.reveal("blkback hypercalls per request")   # ← a number

# %%
(blk,) = [d for d in io.devices[vm1.domid] if d.kind == "vbd"]
src, dst = io.alloc_pages(vm1.domid, 2), io.alloc_pages(vm1.domid, 2)
hv.guest_write(vm1.domid, src)
before = blk.back.counts["hypercalls"]
w = blk.front.submit(BLKIF_OP_WRITE, 0, src)
io.run()
per_request = blk.back.counts["hypercalls"] - before
r = blk.front.submit(BLKIF_OP_READ, 0, dst)
io.run()
same = [int(hv.memory.content[vm1.p2m[p]]) for p in dst] == [int(hv.memory.content[vm1.p2m[p]]) for p in src]
print("completed:", blk.front.completed, " data read back identical:", same)
ex.add("blkback hypercalls per request", expected=per_request,
       explain="one grant map for both segments, one unmap, one event-channel send")
ex.check("blkback hypercalls per request", answer_hcalls)

# %% [markdown]
# A request the backend cannot honour never reaches the disk: too many segments (the limit is 11,
# what fits in a 112-byte ring slot), a bad grant, a grant made out to some other domain. Each gets
# `BLKIF_RSP_ERROR` (-1) on the ring:

# %%
from vmlab.io.blkif import BlkifRequest, BlkifSegment
t = io.grants.table(vm1.domid)
page = io.alloc_pages(vm1.domid, 12)
segs12 = tuple(BlkifSegment(t.grant_foreign_access(0, io.mfn(vm1.domid, p), readonly=True)) for p in page)
foreign = BlkifSegment(t.grant_foreign_access(vm2.domid, io.mfn(vm1.domid, page[0]), readonly=True))
writes = blk.back.disk.counts["writes"]
for rid, req in ((100, BlkifRequest(BLKIF_OP_WRITE, 100, 0, segs12)),
                 (101, BlkifRequest(BLKIF_OP_WRITE, 101, 0, (BlkifSegment(4000),))),
                 (102, BlkifRequest(BLKIF_OP_WRITE, 102, 0, (foreign,)))):
    blk.front.submit_raw(req)
    io.run()
    print(f"request {rid}: status {blk.front.completed[rid]}")
print("writes that reached the image:", blk.back.disk.counts["writes"] - writes)

# %% [markdown]
# ## 4. Rings and notification suppression
#
# A blkif ring holds 32 requests (one page, 112-byte slots, rounded down to a power of two). The
# producer publishes with `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY` and sends an event only if the
# consumer asked for one: `(new − req_event) < (new − old)`. A consumer that runs dry sets
# `req_event = req_cons + 1` and looks once more (`RING_FINAL_CHECK_FOR_REQUESTS`).
#
# **Predict:** the backend has taken the first request and is busy (it has not gone idle). The
# frontend now pushes five more batches, one push each. How many of the six pushes send a
# notification?

# %%
answer_pushes = ex.reveal("notifying pushes")   # ← a number

# %%
ring = SharedRing.init(BLKIF_RING_SIZE)
front, back = FrontRing(ring), BackRing(ring)
notified = []
front.put_request("first"); notified.append(front.push_requests())
back.get_request()                                  # busy: no final check yet
for i in range(5):
    front.put_request(i); notified.append(front.push_requests())
print("notify on each push:", notified)
ex.add("notifying pushes", expected=sum(notified), explain="only the first: req_event still asks for request 1")
ex.check("notifying pushes", answer_pushes)

# %% [markdown]
# Step through a longer conversation on an 8-slot ring. Red dots are pushes that notified, grey
# ones pushes that stayed quiet. Switch suppression off and count again.

# %%
# NBVAL_IGNORE_OUTPUT
RingVisualizer(batch=2)

# %% [markdown]
# ## 5. Batching
#
# blkfront can put several requests on the ring before it pushes (the Linux block layer hands it a
# queue). **Predict:** 32 single-page writes, pushed in batches of 8, with the backend idle between
# batches. How many notifications per request, counting both directions?

# %%
answer_batch = ex.reveal("notifications per request, batch 8")   # ← e.g. 0.5

# %%
page = io.alloc_pages(vm1.domid, 1)
hv.guest_write(vm1.domid, page)
f, b = blk.front, blk.back
sent = f.counts["notify_sent"] + b.counts["notify_sent"]
for batch in range(4):
    for i in range(8):
        f.submit(BLKIF_OP_WRITE, 64 + (batch * 8 + i) * 8, page, push=False)
    f.kick()
    io.run()
per_req = (f.counts["notify_sent"] + b.counts["notify_sent"] - sent) / 32
print(f"{per_req} notifications per request")
ex.add("notifications per request, batch 8", expected=per_req,
       explain="one to dom0 and one back per batch of 8: 2 / 8")
ex.check("notifications per request, batch 8", answer_batch)

# %% [markdown]
# ## 6. The same I/O on an HVM guest
#
# An unmodified guest has no blkfront. Its disk is an IDE controller that qemu-dm emulates in dom0:
# every register access is a VM exit forwarded to the device model and back, and IDE runs one
# command at a time, so nothing batches. Every one of those register accesses leaves the guest,
# crosses into dom0's user space and comes back; the PV path instead pays its handful of hypercalls,
# event notifications and grant operations once per request.
#
# **Predict:** per 4 KiB request, roughly how many times more CPU cycles does the emulated path
# spend than the PV path (batch 1, suppression on)? (within 1)

# %%
answer_ratio = ex.reveal("HVM / PV cycles per request")   # ← a number

# %% [markdown]
# How the model prices it. Every IDE register access is a VM exit (IO_INSTRUCTION) that Xen's
# `handle_mmio` turns into an **ioreq**: Xen writes it into the vCPU's slot of the shared ioreq page
# and notifies qemu-dm over an event channel; qemu-dm emulates the register, answers in the slot and
# notifies back; Xen completes the access and the guest resumes. The model counts 12 port accesses
# per DMA request (an illustrative figure from the PIIX programming sequence) and prices one ioreq
# round trip at 6,732 cycles — Dall et al.'s exit to a user-space device model (ISCA 2016, recalled),
# a floor for Xen, whose path also crosses into dom0. Split hop by hop (the exit from
# kvm-unit-tests, the two notifications priced like the PV path's, the rest is qemu-dm's wake-up and
# emulation):

# %%
trip = io_compare(request_kib=4, batch=1, n_requests=1)["ioreq"]
for hop, where, cycles in zip(trip["hop"], trip["where"], trip["cycles"]):
    print(f"{hop:16s} {where:5s} {cycles:6.0f}")
print(f"{'one ioreq':16s} {'':5s} {sum(trip['cycles']):6.0f}")

# %% [markdown]
# Hypercalls cost 1,228 cycles and an event delivered to another CPU 3,102; the other per-operation
# costs are illustrative. In all, the PV path costs about 15,900 cycles per request: 4 hypercalls
# (the front's notify; the back's grant map, unmap and notify), 2 event notifications, 2 grant
# operations, plus illustrative ring and copy work.

# %%
cmp = io_compare(request_kib=4, batch=1, n_requests=64)
m = {k: (p, h) for k, p, h in zip(cmp["metrics"]["metric"], cmp["metrics"]["pv"], cmp["metrics"]["hvm"])}
for k in ("notifications", "hypercalls", "VM exits", "grant maps+unmaps", "cycles"):
    print(f"{k:20s} PV {m[k][0]:9.2f}   HVM {m[k][1]:9.2f}")
ratio = m["cycles"][1] / m["cycles"][0]
ex.add("HVM / PV cycles per request", expected=round(ratio, 1), tolerance=1.0,
       explain="12 ioreq round trips x 6,732 ≈ 81k cycles against ≈ 16k: 4 hypercalls, 2 notifications, 2 grant ops and ring work")
ex.check("HVM / PV cycles per request", answer_ratio)

# %% [markdown]
# ### PV drivers in an HVM guest
#
# An HVM guest can load Xen's PV drivers (`vmlab.guest.pv_on_hvm`): the platform-pci driver binds
# to the Xen platform PCI device qemu-dm offers, sets `HVM_PARAM_CALLBACK_IRQ` so event channels
# reach the guest, and blkfront/netfront replace the emulated disk and NIC. The I/O path is then the
# split driver's — grants, a ring, two notifications — and the only HVM cost left is that the
# frontend's hypercall is a VMCALL exit (1,545 cycles, kvm-unit-tests) instead of a PV hypercall:

# %%
for k in ("notifications", "hypercalls", "VM exits", "grant maps+unmaps", "cycles"):
    pvhvm = dict(zip(cmp["metrics"]["metric"], cmp["metrics"]["pvhvm"]))[k]
    print(f"{k:20s} PV {m[k][0]:9.2f}   HVM {m[k][1]:9.2f}   PV-on-HVM {pvhvm:9.2f}")

# %% [markdown]
# Explore: request size (more segments share one request's hypercalls), batch size and suppression
# change the PV bars; the emulated bars do not move with batching.

# %%
# NBVAL_IGNORE_OUTPUT
IoExplorer()

# %% [markdown]
# ## 7. When the guest goes
#
# `xm destroy` tears the devices down — blkback unmaps and closes its channel — and then
# everything that named the guest goes: its grants, event channels, watches and xenstore nodes.

# %%
d = vm1.domid
print("before:", io.leftovers(d))
xm.destroy("vm1")
print("after: ", io.leftovers(d))
print("dom0 still maps", io.grants.live_mappings(0), "foreign frames and has", io.events.open_ports(0), "open ports")

# %% [markdown]
# ## Summary
#
# * A domU reaches the disk only through dom0: it **grants** its buffer pages, describes the I/O on
#   a **shared ring**, and **notifies** over an event channel; blkback maps, does the I/O, unmaps
#   and answers.
# * For an unprivileged domain, a mapped grant is the only way into another domain's frame, and a
#   grant in use cannot be revoked.
# * Notification suppression and batching let one event carry many requests; emulation pays a
#   dozen ioreq round trips to qemu-dm per request however many are queued; PV drivers in an HVM
#   guest bring it back to the split driver's cost.

# %%
# NBVAL_IGNORE_OUTPUT
print(ex.summary())
