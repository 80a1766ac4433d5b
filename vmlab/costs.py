"""What each operation costs, in CPU cycles, on a given machine: `CostModel` and its presets.

A `CostModel` is a frozen record of per-operation costs. Field `<operation>_cycles`
holds the cost of the row `<operation>` of `datasets/tables/cost_presets.csv`, so
every number a lab shows traces to a dataset row with a source and a confidence
(`provenance`). Rows the dataset does not (yet) carry fall back to the
ILLUSTRATIVE values in `_FALLBACK` below; `provenance` names them as such and
`missing_rows()` lists them.

Students override any value: ``preset("p4_vtx_2006").replace(vmexit_roundtrip_cycles=500)``.

Presets: p4_vtx_2006 (Pentium 4 Prescott, first-generation VT-x, VMware BT; the
setting of Adams & Agesen 2006), modern_kvm (a 2016-2024 server under KVM),
xen_pv (a paravirtualized Xen guest on a modern server).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType

from vmlab.errors import ConfigError, DatasetError

__all__ = ["CostModel", "preset", "as_costs", "PRESETS", "missing_rows", "Provenance"]

PRESETS = ("p4_vtx_2006", "modern_kvm", "xen_pv")


@dataclass(frozen=True, kw_only=True, slots=True)
class Provenance:
    """Where one value of a CostModel comes from."""

    operation: str
    source: str
    confidence: str  # verified | recalled | illustrative | override
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CostModel:
    """Per-operation costs in cycles (see the module docstring for where they come from).

    Rows of datasets/tables/cost_presets.csv (same name without `_cycles`):
    guest_instruction .. multicall_per_entry. The other fields are operations the
    dataset does not carry yet (ILLUSTRATIVE fallbacks, listed by `missing_rows`).
    """

    name: str = "custom"
    clock_ghz: float = 3.0
    # --- rows of cost_presets.csv ----------------------------------------------------------
    guest_instruction_cycles: float = 1.0
    syscall_native_cycles: float = 250.0          # user -> kernel -> user, natively
    vmexit_roundtrip_cycles: float = 2400.0       # VM exit + VM entry, empty handler
    hypercall_roundtrip_cycles: float = 2400.0    # PV: guest -> Xen -> guest
    bt_translate_block_cycles: float = 3000.0     # translate one basic block of guest kernel code
    bt_callout_cycles: float = 100.0              # translated code calls into the VMM
    bt_syscall_cycles: float = 1000.0             # a whole syscall under BT (replaces syscall_native)
    bt_indirect_branch_cycles: float = 10.0       # extra per kernel call/ret (target lookup)
    shadow_pte_write_trap_cycles: float = 4000.0  # HVM+shadow: a guest PTE write exits and is propagated (total)
    bt_pte_write_cycles: float = 300.0            # BT after adaptive translation: PTE write as a callout
    shadow_resync_cycles: float = 20000.0         # build/revalidate one shadow page-table page
    tlb_miss_native_walk_ref_cycles: float = 30.0 # one memory reference of a 1D page walk
    nested_walk_ref_cycles: float = 30.0          # one memory reference of a 2D (nested) walk
    io_exit_to_device_model_cycles: float = 10000.0  # HVM: I/O exit handled by the device model in dom0
    event_channel_notify_cycles: float = 3000.0   # PV: EVTCHNOP_send + upcall in the other domain
    multicall_per_entry_cycles: float = 150.0     # Xen's work per entry inside one mmu_update/multicall
    # --- operations cost_presets.csv lacks (ILLUSTRATIVE fallbacks, see _FALLBACK) ---------
    native_pte_write_cycles: float = 5.0
    native_cr3_load_cycles: float = 300.0
    native_tlb_flush_cycles: float = 150.0
    native_page_fault_cycles: float = 1100.0
    native_port_io_cycles: float = 1000.0
    native_mmio_cycles: float = 500.0
    native_irq_mask_cycles: float = 10.0
    native_timer_irq_cycles: float = 1500.0
    native_hlt_cycles: float = 100.0
    native_cpuid_cycles: float = 150.0
    native_call_ret_cycles: float = 10.0
    native_exception_cycles: float = 1000.0
    native_cr8_write_cycles: float = 20.0
    hvm_emulate_cycles: float = 600.0             # in-hypervisor handling of a simple exit (decode + emulate)
    hvm_inject_cycles: float = 500.0              # inject an interrupt/exception on VM entry
    shadow_fill_cycles: float = 2500.0            # walk the guest table and fill/check one shadow entry
    shadow_cr3_switch_cycles: float = 2000.0      # find (or start) the shadow of a new guest CR3
    cr8_write_exits: float = 1.0                  # 1: CR8 (TPR) writes exit; 0: TPR shadow / APICv
    bt_pte_write_trap_cycles: float = 2500.0      # BT before adaptation: write to a traced page table faults
    bt_adapt_threshold: float = 4.0               # trapping writes from one block before it is retranslated
    bt_tc_capacity_blocks: float = 16384.0        # translation-cache capacity; full -> flush everything
    bt_inline_emulation_cycles: float = 25.0      # cli/sti/cr8 emulated inside the translation cache
    bt_exception_cycles: float = 1500.0           # deliver a fault from translated code to the guest
    bt_device_emulation_cycles: float = 1500.0    # the VMM's device emulation behind an in/out callout
    pv_queue_entry_cycles: float = 20.0           # guest side: add one entry to the multicall buffer
    pv_trap_bounce_cycles: float = 1000.0         # PV: exception enters Xen, bounced to the guest kernel
    pv_syscall_bounce_cycles: float = 0.0         # PV: extra per syscall (64-bit: bounce through Xen)
    pv_ring_request_cycles: float = 500.0         # PV: fill a ring request + backend work in dom0
    pv_upcall_cycles: float = 500.0               # PV: deliver a virtual interrupt as an event upcall
    # --- where each value came from (not compared) ----------------------------------------
    provenance: tuple[Provenance, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("_cycles") or f.name in _COUNT_FIELDS:
                v = getattr(self, f.name)
                if not isinstance(v, (int, float)) or v != v or v < 0:
                    raise ConfigError(f"CostModel {f.name}={v!r} must be a number >= 0; costs are cycles")
        if self.clock_ghz <= 0:
            raise ConfigError(f"CostModel clock_ghz={self.clock_ghz} must be > 0")
        if self.bt_tc_capacity_blocks < 1:
            raise ConfigError(f"bt_tc_capacity_blocks={self.bt_tc_capacity_blocks} must be >= 1 block")

    # ------------------------------------------------------------------------------------
    def replace(self, **changes) -> "CostModel":
        """A copy with some values overridden (marked 'override' in provenance)."""
        known = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ConfigError(f"CostModel has no field {bad[0]!r}; fields end in _cycles, e.g. vmexit_roundtrip_cycles")
        prov = {p.operation: p for p in self.provenance}
        for k in changes:
            if k.endswith("_cycles") or k in _COUNT_FIELDS:
                op = _op_name(k)
                prov[op] = Provenance(operation=op, source="user override", confidence="override")
        return dataclasses.replace(self, **changes, provenance=tuple(prov.values()))

    def source_of(self, field_name: str) -> Provenance:
        """The provenance of one field (by field or dataset operation name)."""
        op = _op_name(field_name)
        for p in self.provenance:
            if p.operation == op:
                return p
        return Provenance(operation=op, source="CostModel default", confidence="illustrative")

    def values(self) -> dict[str, float]:
        """{field: value} for every cost field (plain dict, e.g. for a widget's sliders)."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name.endswith("_cycles") or f.name in _COUNT_FIELDS}

    def seconds(self, cycles: float) -> float:
        return float(cycles) / (self.clock_ghz * 1e9)


_COUNT_FIELDS = frozenset({"cr8_write_exits", "bt_adapt_threshold", "bt_tc_capacity_blocks"})


def _op_name(field_name: str) -> str:
    return field_name[:-len("_cycles")] if field_name.endswith("_cycles") else field_name


def _field_name(op: str) -> str:
    return op if op in _COUNT_FIELDS else f"{op}_cycles"


DATASET_OPERATIONS = (
    "guest_instruction", "syscall_native", "vmexit_roundtrip", "hypercall_roundtrip", "bt_translate_block",
    "bt_callout", "bt_syscall", "bt_indirect_branch", "shadow_pte_write_trap", "bt_pte_write", "shadow_resync",
    "tlb_miss_native_walk_ref", "nested_walk_ref", "io_exit_to_device_model", "event_channel_notify",
    "multicall_per_entry",
)

# ILLUSTRATIVE fallbacks for operations cost_presets.csv does not carry. Chosen, not
# measured: orders of magnitude consistent with the dataset's own rows and with
# shared/REFERENCE.md s5 (e.g. a first-generation VT-x exit ~2400 cycles, modern ~1100).
# Each entry: operation -> {preset: (cycles, why)}.
_FALLBACK: dict[str, dict[str, tuple[float, str]]] = {
    "native_pte_write": {p: (5.0, "a store to a page-table entry") for p in PRESETS},
    "native_cr3_load": {"p4_vtx_2006": (300.0, "mov cr3 + TLB flush on a P4"),
                        "modern_kvm": (200.0, "mov cr3 (PCID-less)"), "xen_pv": (200.0, "mov cr3 (PCID-less)")},
    "native_tlb_flush": {p: (150.0, "invlpg") for p in PRESETS},
    "native_page_fault": {"p4_vtx_2006": (1100.0, "exception entry + handler + iret on a P4"),
                          "modern_kvm": (700.0, "exception entry + minimal handler + iret"),
                          "xen_pv": (700.0, "exception entry + minimal handler + iret")},
    "native_port_io": {p: (1000.0, "an uncached port access to a legacy device") for p in PRESETS},
    "native_mmio": {p: (500.0, "an uncached device-register access") for p in PRESETS},
    "native_irq_mask": {p: (10.0, "cli/sti") for p in PRESETS},
    "native_timer_irq": {p: (1500.0, "interrupt entry + timer handler + iret") for p in PRESETS},
    "native_hlt": {p: (100.0, "hlt entry/exit, idle time not counted") for p in PRESETS},
    "native_cpuid": {"p4_vtx_2006": (150.0, "cpuid on a P4"), "modern_kvm": (100.0, "cpuid"),
                     "xen_pv": (100.0, "cpuid")},
    "native_call_ret": {p: (10.0, "a call/ret pair, predicted") for p in PRESETS},
    "native_exception": {"p4_vtx_2006": (1000.0, "#DE entry + handler + iret on a P4"),
                         "modern_kvm": (600.0, "#DE entry + handler + iret"),
                         "xen_pv": (600.0, "#DE entry + handler + iret")},
    "native_cr8_write": {p: (20.0, "mov cr8 (TPR)") for p in PRESETS},
    "hvm_emulate": {"p4_vtx_2006": (600.0, "decode + emulate a simple instruction in the VMM"),
                    "modern_kvm": (300.0, "KVM in-kernel emulation of a simple exit"),
                    "xen_pv": (300.0, "Xen in-hypervisor emulation of a simple exit")},
    "hvm_inject": {"p4_vtx_2006": (500.0, "set up event injection on entry"),
                   "modern_kvm": (200.0, "event injection on entry"), "xen_pv": (200.0, "event injection on entry")},
    "shadow_fill": {"p4_vtx_2006": (2500.0, "walk guest tables and fill one shadow entry"),
                    "modern_kvm": (1500.0, "walk guest tables and fill one shadow entry"),
                    "xen_pv": (1500.0, "walk guest tables and fill one shadow entry")},
    "shadow_cr3_switch": {"p4_vtx_2006": (2000.0, "look up / switch the shadow root"),
                          "modern_kvm": (1000.0, "look up / switch the shadow root"),
                          "xen_pv": (1000.0, "look up / switch the shadow root")},
    "cr8_write_exits": {"p4_vtx_2006": (1.0, "first-generation VT-x has no TPR shadow: CR8 writes exit"),
                        "modern_kvm": (0.0, "TPR shadow / APICv: CR8 writes do not exit"),
                        "xen_pv": (0.0, "TPR shadow / APICv: CR8 writes do not exit")},
    "bt_pte_write_trap": {"p4_vtx_2006": (2500.0, "write to a traced page: #PF into the VMM, decode, emulate"),
                          "modern_kvm": (1500.0, "write to a traced page: #PF into the VMM, decode, emulate"),
                          "xen_pv": (1500.0, "write to a traced page: #PF into the VMM, decode, emulate")},
    "bt_adapt_threshold": {p: (4.0, "trapping writes from one block before it is retranslated to a callout")
                           for p in PRESETS},
    "bt_tc_capacity_blocks": {p: (16384.0, "translation-cache capacity in basic blocks") for p in PRESETS},
    "bt_inline_emulation": {p: (25.0, "cli/sti/cr8 become a store to virtual CPU state in the TC") for p in PRESETS},
    "bt_exception": {"p4_vtx_2006": (1500.0, "map the faulting TC address back to the guest and deliver"),
                     "modern_kvm": (1000.0, "map the faulting TC address back to the guest and deliver"),
                     "xen_pv": (1000.0, "map the faulting TC address back to the guest and deliver")},
    "bt_device_emulation": {p: (1500.0, "the VMM's own device emulation behind an in/out callout") for p in PRESETS},
    "pv_queue_entry": {p: (20.0, "fill one multicall_entry in the per-CPU buffer") for p in PRESETS},
    "pv_trap_bounce": {"p4_vtx_2006": (1000.0, "exception enters Xen (ring 0), bounced to the ring-1 kernel"),
                       "modern_kvm": (1228.0, "as a Xen hypercall round trip (exit_costs.csv Dall 2016)"),
                       "xen_pv": (1228.0, "as a Xen hypercall round trip (exit_costs.csv Dall 2016)")},
    "pv_syscall_bounce": {"p4_vtx_2006": (0.0, "32-bit PV: fast system-call trap straight to the guest (Barham 2003)"),
                          "modern_kvm": (150.0, "64-bit PV: syscall enters Xen, bounced to the guest kernel"),
                          "xen_pv": (0.0, "this preset's syscall_native row already includes the bounce")},
    "pv_ring_request": {p: (500.0, "fill a ring request + backend work in dom0") for p in PRESETS},
    "pv_upcall": {p: (500.0, "deliver a virtual interrupt as an event-channel upcall") for p in PRESETS},
}

_CLOCK_GHZ = {"p4_vtx_2006": 3.8, "modern_kvm": 3.0, "xen_pv": 3.0}


def _dataset_entries(name: str):
    try:
        from vmlab.datasets import cost_preset_entries
    except ImportError:  # pragma: no cover - the datasets module ships with vmlab
        return {}
    return cost_preset_entries(name)


_CACHE: dict[str, CostModel] = {}


def preset(name: str) -> CostModel:
    """The CostModel for a named preset, values read from datasets/tables/cost_presets.csv.

    Raises ConfigError for an unknown preset name (DatasetError if the file is altered).
    """
    if name in _CACHE:
        return _CACHE[name]
    if name not in PRESETS:
        raise ConfigError(f"no cost preset named {name!r}; choose from {', '.join(PRESETS)}")
    try:
        entries = _dataset_entries(name)
    except DatasetError as exc:
        if "no cost preset named" in str(exc):
            entries = {}
        else:
            raise
    values: dict[str, float] = {}
    prov: list[Provenance] = []
    known = {f.name for f in dataclasses.fields(CostModel)}
    for op, e in entries.items():
        fname = _field_name(op)
        if fname in known:
            values[fname] = float(e.cycles)
            prov.append(Provenance(operation=op, source=e.source, confidence=e.confidence, note=e.note or ""))
    for op, per in _FALLBACK.items():
        fname = _field_name(op)
        if fname not in values:
            cycles, why = per[name]
            values[fname] = cycles
            prov.append(Provenance(operation=op, source="vmlab/costs.py _FALLBACK (not in cost_presets.csv)",
                                   confidence="illustrative", note=f"ILLUSTRATIVE: {why}"))
    for op in DATASET_OPERATIONS:
        if _field_name(op) not in values:
            prov.append(Provenance(operation=op, source="CostModel default (missing from cost_presets.csv)",
                                   confidence="illustrative", note="ILLUSTRATIVE default"))
    model = CostModel(name=name, clock_ghz=_CLOCK_GHZ[name], **values, provenance=tuple(prov))
    _CACHE[name] = model
    return model


def missing_rows(name: str) -> list[tuple[str, float, str, str]]:
    """Rows (operation, cycles, source, confidence) the dataset should add for this preset."""
    m = preset(name)
    return [(p.operation, float(getattr(m, _field_name(p.operation))), p.note.removeprefix("ILLUSTRATIVE: "), "illustrative")
            for p in m.provenance if p.source.startswith(("vmlab/costs.py", "CostModel default"))]


FALLBACK = MappingProxyType(_FALLBACK)


def as_costs(costs: "CostModel | str") -> CostModel:
    """A CostModel, given one or a preset name."""
    if isinstance(costs, CostModel):
        return costs
    if isinstance(costs, str):
        return preset(costs)
    raise ConfigError(f"costs={costs!r} is neither a CostModel nor a preset name; use one of {', '.join(PRESETS)}")
