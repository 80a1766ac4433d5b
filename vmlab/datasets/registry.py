"""The dataset registry: where the datasets are and the sha256 every file must match.

The folder is `vmlab._resources.data_root()`: $VMLAB_DATASETS if set, else the datasets
shipped inside vmlab (the repository's `datasets/` in an editable install). A root is any
`importlib.resources` Traversable (a Path in every ordinary install).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from vmlab._resources import data_root
from vmlab.errors import DatasetError

# Read once at import; pass root= to read another copy.
DATASETS_DIR = data_root()
REGISTRY_NAME = "registry.json"
CONFIDENCE_LEVELS = ("verified", "recalled", "illustrative")
_REGEN = "python tools/capture_trace.py --registry"



@dataclass(frozen=True, kw_only=True, slots=True)
class DatasetInfo:
    """One dataset: its name, kind ('table' or 'trace'), file and a one-line description."""

    name: str
    kind: str
    path: str
    description: str



def _root(root: Traversable | str | None) -> Traversable:
    if root is None:
        return DATASETS_DIR
    return Path(root) if isinstance(root, str) else root


def _registry(root: Traversable) -> dict[str, str]:
    path = root / REGISTRY_NAME
    if not path.is_file():
        raise DatasetError(f"{path} is missing; the dataset registry must exist; reinstall vmlab or restore "
                           f"datasets/ from the repository")
    try:
        data = json.loads(path.read_text())
        return dict(data["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a valid registry ({exc}); restore it or run {_REGEN}") from None


def _sha256(path: Traversable) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(root: Traversable, rel: str) -> Traversable:
    """The path of a registered dataset file whose content matches its registered hash."""
    reg = _registry(root)
    path = root / rel
    if rel not in reg:
        raise DatasetError(f"datasets/{rel} is not in datasets/{REGISTRY_NAME}; every dataset file must be "
                           f"registered; run {_REGEN} after adding it")
    if not path.is_file():
        raise DatasetError(f"datasets/{rel} is missing ({path}); every registered dataset file must exist; "
                           f"restore it from the repository or regenerate it (see datasets/README.md)")
    got = _sha256(path)
    if got != reg[rel]:
        raise DatasetError(f"datasets/{rel} has sha256 {got[:12]}… but the registry records {reg[rel][:12]}…; "
                           f"dataset files must match datasets/{REGISTRY_NAME}; restore the file, or if you "
                           f"changed it on purpose run {_REGEN}")
    return path


def verify_registry(root: Traversable | str | None = None) -> dict[str, str]:
    """Check every registered file; returns {relative path: sha256}. Raises DatasetError on the first bad one."""
    r = _root(root)
    reg = _registry(r)
    for rel in sorted(reg):
        _checked(r, rel)
    return reg
