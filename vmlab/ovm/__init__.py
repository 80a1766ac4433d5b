"""The Oracle VM layer: a Manager, an Agent on every server, repositories, templates, HA, VLANs.

Built on the same hypervisor objects as xm: each server is a `Hypervisor` in a
`ServerPool`, and each agent drives its server through `Toolstack` (xm).
"""

from vmlab.ovm.agent import Agent
from vmlab.ovm.events import Event
from vmlab.ovm.inventory import Guest, Role, ServerRecord, ServerState, Template
from vmlab.ovm.maintenance import EvacuationReport, Move
from vmlab.ovm.manager import Manager, server_spec
from vmlab.ovm.storage import CopyCost, DiskImage, FsckReport, Repository, copy_cost

__all__ = ["Agent", "Manager", "server_spec", "Repository", "DiskImage", "FsckReport", "CopyCost", "copy_cost",
           "Template", "Guest", "Role", "ServerRecord", "ServerState", "Event", "EvacuationReport", "Move"]
