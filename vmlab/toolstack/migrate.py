"""`xm migrate [-l] [-p port] <domain> <host>`: move a guest to another server of the pool.

The pool's link carries the pages; the policy defaults to Xen 3's pre-copy
(xc_domain_save) for -l and stop-and-copy without it, as xend did.
"""

from __future__ import annotations

from typing import Callable

from vmlab.errors import MigrationError
from vmlab.migration.faults import Fault
from vmlab.migration.live import RELOCATION_PORT, migrate_domain
from vmlab.migration.policies import Policy, StopAndCopy, Xen3Policy, policy_by_name
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.workloads import Workload

__all__ = ["migrate"]


def migrate(pool, domain: str | int, target_host: str, *, live: bool = True, port: int = RELOCATION_PORT,
            policy: Policy | str | None = None, workload: Workload | None = None, seed: int = 0,
            fault: Fault | None = None, progress: Callable[[RoundRecord], None] | None = None,
            max_time_s: float = 600.0) -> MigrationReport:
    """Migrate `domain` (a name anywhere in the pool) to server `target_host`.

    Raises MigrationRefused / MigrationFailed (both MigrationError) and
    ConfigError for an unknown server.
    """
    if isinstance(domain, str) and not domain.isdigit():
        src, dom = pool.find(domain)
    else:
        raise MigrationError(f"xm migrate {domain}: domids are per server in a pool; name the guest instead")
    dst = pool.server(target_host)
    if isinstance(policy, str):
        policy = policy_by_name(policy)
    if policy is None:
        policy = Xen3Policy() if live else StopAndCopy()
    return migrate_domain(src, dst, dom.name, link=pool.link, policy=policy, live=live, workload=workload,
                          seed=seed, fault=fault, port=port, progress=progress, max_time_s=max_time_s)
