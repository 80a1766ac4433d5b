"""Where vmlab's shipped files are: the datasets and the lab notebooks.

The repository keeps them in `datasets/` and `labs/`; pyproject's `package-dir` ships them
inside the wheel as the data-only packages `vmlab._data` and `vmlab._labs`, read here with
`importlib.resources`. An editable install (`make lab`, `make test`) or a bare checkout has no
such packages (setuptools' editable finder only maps folders with an `__init__.py`, and
`datasets/` must hold data files only), so there the repository's own folders are read.

`VMLAB_DATASETS` (a directory laid out like `datasets/`) overrides the shipped datasets.
Nothing here writes: the installed package is read-only for labs and students.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from vmlab.errors import DatasetError

__all__ = ["DATA_PACKAGE", "LABS_PACKAGE", "data_root", "labs_root"]

DATA_PACKAGE = "vmlab._data"
LABS_PACKAGE = "vmlab._labs"
_REPO = Path(__file__).resolve().parent.parent  # a plain source checkout on sys.path


def _files(package: str, repo_folder: str, marker: str) -> Traversable:
    """The folder holding `package`'s files (a real directory when the install is not zipped)."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        # An editable install or a bare checkout: the repository's folder next to vmlab/.
        root = _REPO / repo_folder
        if (root / marker).is_file():
            return root
        raise DatasetError(f"{package} is not installed and {root} has no {marker}; vmlab's data ships "
                           f"inside the package; reinstall vmlab (pip install vmlab, or pip install -e .)") from None
    # A data-only package is a namespace package: files() gives a MultiplexedPath. Its child
    # is a plain path, so return the folder that really holds the marker file.
    child = root.joinpath(marker)
    parent = getattr(child, "parent", None)
    return parent if isinstance(parent, Path) else root


def data_root() -> Traversable:
    """The datasets folder: $VMLAB_DATASETS if set, else the one shipped in vmlab._data."""
    env = os.environ.get("VMLAB_DATASETS")
    if env:
        return Path(env)
    return _files(DATA_PACKAGE, "datasets", "registry.json")


def labs_root() -> Traversable:
    """The folder of lab notebooks shipped in vmlab._labs (read-only: copy before running)."""
    return _files(LABS_PACKAGE, "labs", "01-meet-the-hypervisor.ipynb")
