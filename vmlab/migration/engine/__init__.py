"""The migration engine: pre-copy round loop (precopy.py) and post-copy phase (postcopy.py)."""

from vmlab.migration.engine.precopy import Migration, link_goodput_Bps, run_migration

__all__ = ["run_migration", "link_goodput_Bps", "Migration"]
