"""Networks as VLAN-tagged bridges, per server.

dom0 bridges its first NIC as `xenbr0` (untagged). A VLAN `vid` is a Linux VLAN
sub-interface `peth0.<vid>` (802.1Q tag, vconfig's dev.vid naming) with its own
bridge `xenbr0.<vid>` (vmlab's bridge name; Oracle VM 2.2 lets the administrator
name VLAN bridges). A guest's vif plugs into its VLAN's bridge; guests on
different VLANs share no bridge and cannot reach each other.
"""

from __future__ import annotations

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DomainConfig
from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["bridge_for", "vlan_of_bridge", "add_vlan_bridge", "vlans_on", "guest_vlans", "check_vlan_id"]


def check_vlan_id(vlan: int) -> int:
    if not isinstance(vlan, int) or not 1 <= vlan <= 4094:
        raise ConfigError(f"vlan={vlan!r} is not an 802.1Q VLAN id; use 1..4094")
    return vlan


def bridge_for(vlan: int | None) -> str:
    return "xenbr0" if vlan is None else f"xenbr0.{vlan}"


def vlan_of_bridge(bridge: str) -> int | None:
    head, _, tail = bridge.partition(".")
    return int(tail) if head == "xenbr0" and tail.isdigit() else None


def add_vlan_bridge(hv: Hypervisor, vlan: int) -> str:
    """Create peth0.<vid> and its bridge in dom0 (idempotent); returns the bridge name."""
    check_vlan_id(vlan)
    name = bridge_for(vlan)
    hv.bridges.setdefault(name, f"{hv.bridges.get('xenbr0', 'peth0')}.{vlan}")
    return name


def vlans_on(hv: Hypervisor) -> set[int]:
    return {v for b in hv.bridges if (v := vlan_of_bridge(b)) is not None}


def guest_vlans(config: DomainConfig) -> set[int | None]:
    return {vlan_of_bridge(v.bridge) for v in config.vifs}
