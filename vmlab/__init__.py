"""vmlab: a Xen-style hypervisor simulator for teaching virtualization.

    from vmlab import Host, HostSpec, Hypervisor, Toolstack, virt_install
    hv = Hypervisor(Host(HostSpec(name="ovs1", memory_mib=8192)))
    xm = Toolstack(hv)
    xm.create(virt_install(name="vm1", ram=512))
    print(xm.list_text())

The names below are the curated public API. They are loaded on first use, so
`import vmlab` stays fast for the CLI (each `vmlab` command is a new process).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "VmlabError": "vmlab.errors", "ConfigError": "vmlab.errors", "CapacityError": "vmlab.errors",
    "DomainNotFound": "vmlab.errors", "DomainStateError": "vmlab.errors", "HypercallError": "vmlab.errors",
    "SnapshotError": "vmlab.errors", "StateFileError": "vmlab.errors", "DatasetError": "vmlab.errors",
    "MigrationError": "vmlab.errors",
    # hardware and hypervisor
    "Host": "vmlab.hardware.host", "HostSpec": "vmlab.hardware.host", "Nic": "vmlab.hardware.host",
    "Disk": "vmlab.hardware.host", "StorageKind": "vmlab.hardware.host",
    "MachineMemory": "vmlab.hardware.memory", "PageType": "vmlab.hardware.memory",
    "TLB": "vmlab.hardware.tlb", "walk": "vmlab.hardware.mmu",
    "Hypervisor": "vmlab.hypervisor.hypervisor", "HypercallEntry": "vmlab.hypervisor.hypercalls",
    "Domain": "vmlab.hypervisor.domain", "DomainConfig": "vmlab.hypervisor.domain",
    "DomainKind": "vmlab.hypervisor.domain", "DomainState": "vmlab.hypervisor.domain",
    "Trace": "vmlab.trace", "Exercises": "vmlab.exercises",
    # toolstack
    "Toolstack": "vmlab.toolstack.xm", "parse_xm_config": "vmlab.toolstack.config",
    "virt_install": "vmlab.toolstack.config", "ServerPool": "vmlab.toolstack.pool", "Link": "vmlab.toolstack.pool",
    "migrate": "vmlab.toolstack.migrate",
    # memory virtualization
    "GuestKernel": "vmlab.guest.kernel", "boot_kernel": "vmlab.guest.kernel", "MC_BATCH": "vmlab.guest.kernel",
    "walk_refs": "vmlab.paging.nested", "apply_updates": "vmlab.paging.direct",
    "compare_schemes": "vmlab.guest.explore", "tlb_miss_cost": "vmlab.guest.traffic",
    "pte_update_cost": "vmlab.guest.traffic",
    # execution paths
    "CostModel": "vmlab.costs", "preset": "vmlab.costs",
    "Op": "vmlab.execution", "OpStream": "vmlab.execution", "workload": "vmlab.execution",
    "compare_paths": "vmlab.execution", "run_native": "vmlab.execution", "run_pv": "vmlab.execution",
    "run_hvm": "vmlab.execution", "run_bt": "vmlab.execution", "RunResult": "vmlab.execution",
    # migration
    "run_migration": "vmlab.migration", "predict_migration": "vmlab.migration",
    "MigrationReport": "vmlab.migration", "Xen3Policy": "vmlab.migration", "ModernXenPolicy": "vmlab.migration",
    "QemuPolicy": "vmlab.migration", "PostCopy": "vmlab.migration", "StopAndCopy": "vmlab.migration",
    "MemoryImage": "vmlab.migration", "TargetImage": "vmlab.migration", "Fault": "vmlab.migration",
    # virtual hardware from dom0
    "io_system": "vmlab.io", "IoSystem": "vmlab.io", "frame_access": "vmlab.io", "Xenstore": "vmlab.io",
    "XenbusState": "vmlab.io", "IoCosts": "vmlab.io", "io_explore": "vmlab.io", "io_compare": "vmlab.io",
    # datasets
    "load_table": "vmlab.datasets", "cost_preset": "vmlab.datasets", "load_trace": "vmlab.datasets",
    "list_datasets": "vmlab.datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vmlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
