"""A ring, step by step: the data behind the ring visualizer and Lab 6's predictions.

A small ring (8 slots by default, so every slot is visible) between a frontend
that pushes requests in batches and a backend on another CPU that is sometimes
slow. Each step is one action; after each we keep the ring's indices and the
stage of every slot. With suppression the frontend notifies only when the
backend has said it is idle; without it every push notifies.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError
from vmlab.io.ring import BackRing, FrontRing, SharedRing, ring_columns

__all__ = ["ring_walkthrough", "ACTIONS"]

ACTIONS = ("frontend pushes a batch", "backend serves one request", "backend goes idle (final check)",
           "frontend takes responses")


def ring_walkthrough(*, size: int = 8, batch: int = 2, suppression: bool = True, n_requests: int = 24,
                     step: int | None = None, seed: int = 0) -> dict[str, dict[str, list]]:
    """Simulate the ring and return {'slots': ring_columns at `step`, 'steps': one row per step, 'summary'}.

    `step` None means the last step. Deterministic for a given seed.
    """
    if size < 2 or size & (size - 1):
        raise ConfigError(f"size={size} must be a power of two >= 2, as io/ring.h requires")
    if not 1 <= batch <= size:
        raise ConfigError(f"batch={batch} must be 1..{size} (the ring's slots)")
    if not 1 <= n_requests <= 10_000:
        raise ConfigError(f"n_requests={n_requests} must be 1..10000")
    rng = np.random.default_rng(seed)
    s = SharedRing.init(size)
    f, b = FrontRing(s, suppress=suppression), BackRing(s, suppress=suppression)
    submitted = served = answered = 0
    backend_awake = False     # notified (or not yet idle): the backend thread is running
    front_awake = False
    rows: dict[str, list] = {k: [] for k in ("step", "action", "req_prod", "req_event", "req_cons", "rsp_prod",
                                             "rsp_event", "rsp_cons", "notify", "suppressed", "in_ring")}
    snaps = []
    t = 0
    while answered < n_requests and t < 20 * n_requests + 100:
        choices = []
        if submitted < n_requests and f.free_requests() >= min(batch, n_requests - submitted):
            choices.append(0)
        if backend_awake and b.unconsumed_requests():
            choices += [1, 1]
        if backend_awake and not b.unconsumed_requests():
            choices.append(2)
        if front_awake or f.unconsumed_responses():
            choices.append(3)
        if not choices:
            break
        a = int(rng.choice(choices))
        notify = suppressed = False
        if a == 0:
            for _ in range(min(batch, n_requests - submitted)):
                f.put_request(submitted)
                submitted += 1
            notify = f.push_requests()
            suppressed = not notify
            backend_awake |= notify
        elif a == 1:
            b.put_response(b.get_request())
            served += 1
            notify = b.push_responses()
            front_awake |= notify
        elif a == 2:
            backend_awake = b.final_check_for_requests()
        else:
            while f.unconsumed_responses():
                f.get_response()
                answered += 1
            front_awake = f.final_check_for_responses()
        t += 1
        for k, v in (("step", t), ("action", ACTIONS[a]), ("req_prod", s.req_prod), ("req_event", s.req_event),
                     ("req_cons", b.req_cons), ("rsp_prod", s.rsp_prod), ("rsp_event", s.rsp_event),
                     ("rsp_cons", f.rsp_cons), ("notify", int(notify)), ("suppressed", int(suppressed)),
                     ("in_ring", (f.req_prod_pvt - f.rsp_cons) & 0xFFFFFFFF)):
            rows[k].append(v)
        snaps.append(ring_columns(f, b))
    if not snaps:
        snaps.append(ring_columns(f, b))
    i = len(snaps) - 1 if step is None else max(0, min(int(step), len(snaps)) - 1)
    pushes = f.counts["pushes"]
    summary = {"steps": [len(rows["step"])], "requests": [n_requests], "pushes": [pushes],
               "notifications": [f.counts["notify"] + b.counts["notify"]],
               "frontend_notifications": [f.counts["notify"]], "suppressed": [f.counts["suppressed"]],
               "current_step": [i + 1], "current_action": [rows["action"][i] if rows["action"] else "start"]}
    return {"slots": snaps[i], "steps": rows, "summary": summary}
