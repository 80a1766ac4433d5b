"""Wiring a guest's virtual devices to dom0 backends (stub until the split-driver issue).

`connect` turns a config's disk= and vif= lines into frontends in the guest that
point at backends in dom0; `disconnect` removes them on destroy.
"""

from __future__ import annotations

from vmlab.errors import ConfigError
from vmlab.hypervisor.constants import XEN_MAC_OUI
from vmlab.hypervisor.domain import Domain, VirtualDevice


def check(hv, config) -> None:
    """Refuse a config whose devices dom0 cannot back (unknown bridge). Changes nothing."""
    for vif in config.vifs:
        if vif.bridge not in hv.bridges:
            raise ConfigError(f"vif bridge={vif.bridge!r} does not exist in dom0 (it has {', '.join(sorted(hv.bridges)) or 'none'}); "
                              "use one of those bridges")


def connect(hv, dom: Domain) -> None:
    for i, vif in enumerate(dom.config.vifs):
        mac = vif.mac or f"{XEN_MAC_OUI}:{(dom.domid >> 8) & 0xff:02x}:{dom.domid & 0xff:02x}:{i:02x}"
        dom.devices.append(VirtualDevice(kind="vif", name=f"vif{dom.domid}.{i}", backend_domid=0,
                                         backend=f"{vif.bridge} via {hv.bridges.get(vif.bridge, '?')} mac {mac}"))
    for disk in dom.config.disks:
        store = hv.host.storage_for(disk.path)
        where = f"{store.name} ({store.storage.value})" if store else "dom0 filesystem"
        dom.devices.append(VirtualDevice(kind="vbd", name=disk.vdev, backend_domid=0,
                                         backend=f"{disk.backend}:{disk.path} on {where}"))


def disconnect(hv, dom: Domain) -> None:
    dom.devices.clear()
