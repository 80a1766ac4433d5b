"""What widgets and labs call in io/: each function runs a small machine and returns plain column dicts.

    io_explore(path=...)    disk writes through one path (PV split driver, HVM emulation, or PV-on-HVM), per request
    io_compare(...)         the same writes through all three paths, side by side, and the ioreq round trip
    ring_walkthrough(...)   a small ring step by step (the ring visualizer, Lab 6's predictions)
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DiskSpec
from vmlab.io.blkif import BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_WRITE, SECTORS_PER_PAGE
from vmlab.io.hotplug import attach_block, attach_emulated_disk
from vmlab.io.pricing import DEFAULT_IO_COSTS, IoCosts, cycles_breakdown, ioreq_round_trip
from vmlab.io.ring import BackRing, FrontRing, SharedRing, ring_columns
from vmlab.io.system import io_system, new_io_machine

__all__ = ["io_explore", "io_compare", "ring_walkthrough", "EXPLORE_PATHS", "ACTIONS"]

EXPLORE_PATHS = ("pv", "hvm", "pvhvm")


def _check_explore(path: str, request_kib: int, batch: int, n_requests: int) -> None:
    if path not in EXPLORE_PATHS:
        raise ConfigError(f"path={path!r} must be one of {EXPLORE_PATHS}")
    if not 4 <= request_kib <= 4 * BLKIF_MAX_SEGMENTS_PER_REQUEST or request_kib % 4:
        raise ConfigError(f"request_kib={request_kib} must be a multiple of 4 from 4 to 44 (1..11 pages, "
                          "the segments one blkif request holds)")
    if not 1 <= batch <= 32:
        raise ConfigError(f"batch={batch} must be 1..32 (the blkif ring has 32 slots)")
    if n_requests < 1:
        raise ConfigError(f"n_requests={n_requests} must be at least 1")


def _run_hvm(io, domid: int, spec: DiskSpec, buf: list[int], pages: int, n_requests: int) -> tuple[dict, int, int]:
    dev = attach_emulated_disk(io, domid, spec)
    for i in range(n_requests):
        dev.model.submit(BLKIF_OP_WRITE, i * pages * SECTORS_PER_PAGE, buf[:pages])
    c = dev.model.counts
    # Each exit is one ioreq round trip to qemu-dm; its price (exit_to_device_model_cycles)
    # already includes the ioreq's two event-channel notifications, so they are counted but
    # not priced again (pricing.ioreq_round_trip shows the hops).
    counts = {"exits": c["exits"], "notify_sent": 0, "dma_copy_bytes": c["dma_copy_bytes"],
              "hypercalls": 0, "requests": c["requests"]}
    return counts, c["notify_sent"], 0


def _run_pv(io, domid: int, spec: DiskSpec, buf: list[int], pages: int, n_requests: int, batch: int,
            suppression: bool, rng: np.random.Generator) -> tuple[dict, int, int]:
    dev = attach_block(io, domid, spec, suppress=suppression)
    front, back = dev.front, dev.back
    base, bbase = dict(front.counts), dict(back.counts)
    submitted = slot = 0
    while submitted < n_requests or front.outstanding:
        if submitted < n_requests and front.ring.free_requests() >= batch:
            for _ in range(min(batch, n_requests - submitted)):
                pfns = buf[(slot % 32) * pages:(slot % 32 + 1) * pages]
                front.submit(BLKIF_OP_WRITE, submitted * pages * SECTORS_PER_PAGE, pfns, push=False)
                submitted += 1
                slot += 1
            front.kick()
        io.deliver_events(0)
        io.run_backends(budget=int(rng.integers(1, 2 * batch + 1)))
        io.deliver_events(domid)
    f = {k: front.counts[k] - base.get(k, 0) for k in front.counts}
    b = {k: back.counts[k] - bbase.get(k, 0) for k in back.counts}
    front_calls = "hvm_hypercalls" if io.hv.domains[domid].kind.value == "hvm" else "hypercalls"
    counts = {"hypercalls": b["hypercalls"], "notify_sent": f["notify_sent"] + b["notify_sent"],
              "grant_maps": b["grant_maps"], "grant_unmaps": b["grant_unmaps"], "ring_requests": f["requests"],
              "requests": f["requests"]}
    counts[front_calls] = counts.get(front_calls, 0) + f["hypercalls"]   # an HVM guest's hypercall is a VMCALL exit
    return counts, counts["notify_sent"], f["notify_suppressed"] + b["notify_suppressed"]


def _explore_columns(counts: dict, notifications: int, suppressed: int, pages: int, n_requests: int,
                     costs: IoCosts) -> dict[str, list]:
    n = float(n_requests)
    br = cycles_breakdown(counts, costs)
    total_cycles = sum(br.values())
    cyc_per_req = total_cycles / n
    bytes_per_req = pages * 4096
    mb_s = bytes_per_req / (cyc_per_req / costs.cpu_hz) / 1e6 if cyc_per_req else float("inf")
    maps = counts.get("grant_maps", 0) + counts.get("grant_unmaps", 0)
    hcalls = counts.get("hypercalls", 0) + counts.get("hvm_hypercalls", 0)
    exits = counts.get("exits", 0) + counts.get("hvm_hypercalls", 0)   # ioreq round trips + VMCALLs
    metrics = [
        ("notifications", notifications / n, notifications),
        ("notifications suppressed", suppressed / n, suppressed),
        ("hypercalls", hcalls / n, hcalls),
        ("VM exits", exits / n, exits),
        ("grant maps+unmaps", maps / n, maps),
        ("cycles", cyc_per_req, total_cycles),
        ("MB/s per CPU (overhead only)", mb_s, mb_s),
    ]
    return {
        "metric": [m[0] for m in metrics], "per_request": [float(m[1]) for m in metrics],
        "total": [float(m[2]) for m in metrics],
        "component": list(br), "cycles_per_request": [v / n for v in br.values()],
    }


def io_explore(*, path: str = "pv", request_kib: int = 4, batch: int = 1, suppression: bool = True,
               n_requests: int = 128, seed: int = 0, costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, list]:
    """Run `n_requests` disk writes through one path and return per-request figures as columns.

    path 'pv': blkfront -> ring -> blkback; requests are pushed `batch` at a time and
    the backend thread, on another CPU, gets a random budget each time it runs
    (seeded), so it is sometimes still busy when the frontend pushes again.
    path 'hvm': the emulated IDE disk; every register access an ioreq round trip to qemu-dm;
    `batch` and `suppression` change nothing.
    path 'pvhvm': an HVM guest that loaded PV drivers: blkfront as on 'pv', but the frontend's
    hypercalls are VMCALL exits (`IoCosts.hvm_hypercall_cycles`).
    Columns: one row per metric (metric, per_request, total) plus the cycle breakdown.
    """
    _check_explore(path, request_kib, batch, n_requests)
    pages = max(1, int(request_kib) // 4)
    rng = np.random.default_rng(seed)
    hv, domid = new_io_machine(kind="pv" if path == "pv" else "hvm")
    io = io_system(hv)
    spec = DiskSpec(backend="file", path="/OVS/running_pool/lab6/System.img", vdev="xvda" if path == "pv" else "hda")
    buf = io.alloc_pages(domid, pages * 32)
    hv.guest_write(domid, buf)
    if path == "hvm":
        counts, notifications, suppressed = _run_hvm(io, domid, spec, buf, pages, n_requests)
    else:
        counts, notifications, suppressed = _run_pv(io, domid, spec, buf, pages, n_requests, batch, suppression, rng)
    io.release_domain(domid)
    return _explore_columns(counts, notifications, suppressed, pages, n_requests, costs)


def io_compare(*, request_kib: int = 4, batch: int = 1, suppression: bool = True, n_requests: int = 128,
               seed: int = 0, costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, dict[str, list]]:
    """The same writes through the PV split driver, the emulated disk and PV-on-HVM, side by side.

    Returns {'metrics': metric, pv, hvm, pvhvm}, {'cycles': component, pv, hvm, pvhvm} (cycles per
    request) and {'ioreq': hop, where, what, cycles} (one emulated access's round trip to qemu-dm).
    """
    r = {p: io_explore(path=p, request_kib=request_kib, batch=batch, suppression=suppression,
                       n_requests=n_requests, seed=seed, costs=costs) for p in EXPLORE_PATHS}
    return {"metrics": {"metric": r["pv"]["metric"], **{p: r[p]["per_request"] for p in EXPLORE_PATHS}},
            "cycles": {"component": r["pv"]["component"], **{p: r[p]["cycles_per_request"] for p in EXPLORE_PATHS}},
            "ioreq": ioreq_round_trip(costs)}


# --- the ring, step by step ------------------------------------------------------------------
# A small ring (8 slots by default, so every slot is visible) between a frontend that pushes
# requests in batches and a backend on another CPU that is sometimes slow. Each step is one
# action; after each we keep the ring's indices and the stage of every slot. With suppression
# the frontend notifies only when the backend has said it is idle; without it every push notifies.

ACTIONS = ("frontend pushes a batch", "backend serves one request", "backend goes idle (final check)",
           "frontend takes responses")
_STEP_COLUMNS = ("step", "action", "req_prod", "req_event", "req_cons", "rsp_prod", "rsp_event", "rsp_cons",
                 "notify", "suppressed", "in_ring")


class _Walk:
    """The walkthrough's state: the two ends of one ring and how far each has got."""

    def __init__(self, size: int, batch: int, suppression: bool, n_requests: int) -> None:
        self.s = SharedRing.init(size)
        self.f, self.b = FrontRing(self.s, suppress=suppression), BackRing(self.s, suppress=suppression)
        self.batch, self.n = batch, n_requests
        self.submitted = self.served = self.answered = 0
        self.backend_awake = False     # notified (or not yet idle): the backend thread is running
        self.front_awake = False

    def choices(self) -> list[int]:
        f, b, out = self.f, self.b, []
        if self.submitted < self.n and f.free_requests() >= min(self.batch, self.n - self.submitted):
            out.append(0)
        if self.backend_awake and b.unconsumed_requests():
            out += [1, 1]
        if self.backend_awake and not b.unconsumed_requests():
            out.append(2)
        if self.front_awake or f.unconsumed_responses():
            out.append(3)
        return out

    def act(self, a: int) -> tuple[bool, bool]:
        """Do action `a`; returns (notify, suppressed)."""
        f, b = self.f, self.b
        notify = suppressed = False
        if a == 0:
            for _ in range(min(self.batch, self.n - self.submitted)):
                f.put_request(self.submitted)
                self.submitted += 1
            notify = f.push_requests()
            suppressed = not notify
            self.backend_awake |= notify
        elif a == 1:
            b.put_response(b.get_request())
            self.served += 1
            notify = b.push_responses()
            self.front_awake |= notify
        elif a == 2:
            self.backend_awake = b.final_check_for_requests()
        else:
            while f.unconsumed_responses():
                f.get_response()
                self.answered += 1
            self.front_awake = f.final_check_for_responses()
        return notify, suppressed

    def row(self, t: int, a: int, notify: bool, suppressed: bool) -> tuple:
        s, f, b = self.s, self.f, self.b
        return (t, ACTIONS[a], s.req_prod, s.req_event, b.req_cons, s.rsp_prod, s.rsp_event, f.rsp_cons,
                int(notify), int(suppressed), (f.req_prod_pvt - f.rsp_cons) & 0xFFFFFFFF)


def _check_walk(size: int, batch: int, n_requests: int) -> None:
    if size < 2 or size & (size - 1):
        raise ConfigError(f"size={size} must be a power of two >= 2, as io/ring.h requires")
    if not 1 <= batch <= size:
        raise ConfigError(f"batch={batch} must be 1..{size} (the ring's slots)")
    if not 1 <= n_requests <= 10_000:
        raise ConfigError(f"n_requests={n_requests} must be 1..10000")


def ring_walkthrough(*, size: int = 8, batch: int = 2, suppression: bool = True, n_requests: int = 24,
                     step: int | None = None, seed: int = 0) -> dict[str, dict[str, list]]:
    """Simulate the ring and return {'slots': ring_columns at `step`, 'steps': one row per step, 'summary'}.

    `step` None means the last step. Deterministic for a given seed.
    """
    _check_walk(size, batch, n_requests)
    rng = np.random.default_rng(seed)
    w = _Walk(size, batch, suppression, n_requests)
    rows: dict[str, list] = {k: [] for k in _STEP_COLUMNS}
    snaps = []
    t = 0
    while w.answered < n_requests and t < 20 * n_requests + 100:
        choices = w.choices()
        if not choices:
            break
        a = int(rng.choice(choices))
        notify, suppressed = w.act(a)
        t += 1
        for k, v in zip(_STEP_COLUMNS, w.row(t, a, notify, suppressed)):
            rows[k].append(v)
        snaps.append(ring_columns(w.f, w.b))
    if not snaps:
        snaps.append(ring_columns(w.f, w.b))
    i = len(snaps) - 1 if step is None else max(0, min(int(step), len(snaps)) - 1)
    f, b = w.f, w.b
    summary = {"steps": [len(rows["step"])], "requests": [n_requests], "pushes": [f.counts["pushes"]],
               "notifications": [f.counts["notify"] + b.counts["notify"]],
               "frontend_notifications": [f.counts["notify"]], "suppressed": [f.counts["suppressed"]],
               "current_step": [i + 1], "current_action": [rows["action"][i] if rows["action"] else "start"]}
    return {"slots": snaps[i], "steps": rows, "summary": summary}
