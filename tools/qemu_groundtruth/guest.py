"""The guest of the ground-truth harness: accelerator detection, kernel, dirtier, initramfs.

The guest is a stock Debian kernel booting a tiny initramfs (busybox-static + the static dirtier,
``dirtier.c``). Its ``/init`` reads ``dirtier=WSET_MIB,RATE,MODE,SEED`` from the kernel command line,
so one initramfs serves every run and a run's parameters are visible in its QEMU command line.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import os
import platform
import re
import shutil
import stat
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
args=$(/bin/busybox sed -n 's/.*dirtier=\\([^ ]*\\).*/\\1/p' /proc/cmdline | /bin/busybox tr ',' ' ')
echo "INIT args=$args kernel=$(/bin/busybox uname -r)"
exec /dirtier $args
"""


def detect_accelerator() -> tuple[str, str]:
    """('kvm' | 'tcg', why). KVM only when /dev/kvm is backed by VT-x (kvm_intel) or SVM (kvm_amd)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    hw = "vmx" if " vmx" in flags else "svm" if " svm" in flags else None
    mods = sorted(m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if Path(f"/sys/module/{m}").exists())
    usable = hw is not None and os.access("/dev/kvm", os.R_OK | os.W_OK) and (
        "kvm_intel" in mods or "kvm_amd" in mods)
    why = (f"/dev/kvm {'present' if Path('/dev/kvm').exists() else 'absent'}; cpu virtualization flag: "
           f"{hw or 'none (no vmx/svm in /proc/cpuinfo)'}; kvm modules loaded: {', '.join(mods) or 'none'}")
    if usable:
        return "kvm", why + " -> VT-x/SVM KVM usable"
    return "tcg", why + " -> not a VT-x/SVM KVM, using TCG"


def find_kernel() -> Path:
    cands = sorted(glob.glob("/boot/vmlinuz-*") + glob.glob(str(CACHE / "boot" / "vmlinuz-*")))
    if not cands:
        raise SystemExit("no guest kernel found; run tools/qemu_groundtruth/setup.sh first")
    return Path(cands[-1])


def kernel_version(kernel: Path) -> str:
    m = re.search(r"vmlinuz-(.+)$", kernel.name)
    return m.group(1) if m else kernel.name


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed newc cpio archive of (name, mode, data) entries, with the trailer.

    /dev/console is made the character device 5:1, so the kernel can open it for /init.
    """
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], start=1):
        nb = name.encode() + b"\0"
        rdev = (5, 1) if name == "dev/console" else (0, 0)
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(nb), 0))
        out.write(hdr.encode() + nb)
        out.write(b"\0" * (-(110 + len(nb)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def build_dirtier() -> Path:
    src = HERE / "dirtier.c"
    CACHE.mkdir(exist_ok=True)
    out = CACHE / "dirtier"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", str(out), str(src)], check=True)
    return out


def build_initramfs() -> tuple[Path, str]:
    """(path, sha256) of the initramfs: /init, /bin/busybox, /dirtier (gzip, deterministic)."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    dirtier = build_dirtier()
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    entries = [("bin", d, b""), ("dev", d, b""), ("proc", d, b""), ("sys", d, b""),
               ("dev/console", stat.S_IFCHR | 0o600, b""),
               ("init", x, INIT_SCRIPT.encode()), ("bin/busybox", x, busybox.read_bytes()),
               ("dirtier", x, dirtier.read_bytes()), ("etc", d, b""), ("etc/hostname", f, b"gt\n")]
    raw = _cpio_newc(entries)
    data = gzip.compress(raw, mtime=0)
    out = CACHE / "initramfs.cpio.gz"
    out.write_bytes(data)
    return out, hashlib.sha256(data).hexdigest()


def host_facts() -> dict[str, str]:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"host_kernel": platform.release(), "host_cpu": cpu, "host_cpus": str(os.cpu_count()),
            "host_os": _os_release()}


def _os_release() -> str:
    try:
        for ln in Path("/etc/os-release").read_text().splitlines():
            if ln.startswith("PRETTY_NAME="):
                return ln.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()
