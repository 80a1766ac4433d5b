"""The migration engine: shared state (state.py), the pre-copy round loop (precopy.py), post-copy (postcopy.py)."""

from vmlab.migration.engine.precopy import run_migration
from vmlab.migration.engine.state import Migration
from vmlab.migration.link import TCP_EFFICIENCY, link_goodput_Bps

__all__ = ["run_migration", "link_goodput_Bps", "TCP_EFFICIENCY", "Migration"]
