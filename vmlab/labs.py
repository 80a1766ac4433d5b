"""The lab notebooks shipped inside vmlab, and `vmlab labs copy DIR` to give a student a fresh set.

The installed notebooks are read-only templates (`vmlab._labs`, see vmlab/_resources.py): a
student works on a copy in their own home. `copy_labs` never overwrites a file that exists, so a
JupyterHub can run it at every login and a student's answers survive; a lab added by a newer
vmlab appears beside them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vmlab._resources import labs_root
from vmlab.errors import ConfigError

__all__ = ["CopyReport", "lab_names", "copy_labs"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyReport:
    """What `copy_labs` did: the notebooks it wrote and the ones it left alone (they existed)."""

    dest: Path
    copied: tuple[str, ...]
    skipped: tuple[str, ...]

    def text(self) -> str:
        lines = [f"copied  {self.dest / n}" for n in self.copied]
        lines += [f"skipped {self.dest / n} (exists; not overwritten)" for n in self.skipped]
        lines.append(f"{len(self.copied)} lab(s) copied, {len(self.skipped)} skipped, into {self.dest}")
        return "\n".join(lines)


def lab_names() -> list[str]:
    """The shipped notebooks' file names, in lab order."""
    return sorted(p.name for p in labs_root().iterdir() if p.name.endswith(".ipynb"))


def _write_new(path: Path, data: bytes) -> bool:
    """Create `path` with `data`; False if it existed (left untouched). A failed write leaves nothing."""
    try:
        f = open(path, "xb")  # exclusive create: an existing file is never opened for writing
    except FileExistsError:
        return False
    except OSError as e:
        raise ConfigError(f"labs copy: cannot write {path}: {e.strerror}; give a folder you can write") from None
    try:
        with f:
            f.write(data)
    except OSError as e:
        path.unlink(missing_ok=True)  # no half-written notebook that a later copy would skip
        raise ConfigError(f"labs copy: cannot write {path}: {e.strerror}; free space and run it again") from None
    return True


def copy_labs(dest: str | os.PathLike) -> CopyReport:
    """Write every shipped lab notebook into `dest` (created if needed), skipping any that exist."""
    target = Path(dest).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"labs copy: {target} is a file, not a folder; give a folder, e.g. ~/vmlab-labs")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"labs copy: cannot create {target}: {e.strerror}; give a folder you can write") from None
    root = labs_root()
    copied, skipped = [], []
    for name in lab_names():
        data = root.joinpath(name).read_bytes()
        if _write_new(target / name, data):
            copied.append(name)
        else:
            skipped.append(name)
    return CopyReport(dest=target, copied=tuple(copied), skipped=tuple(skipped))
