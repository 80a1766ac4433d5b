"""`xm save` files: a suspended guest's memory and state, read back exactly by `xm restore`.

Layout (all integers little-endian), after Xen's "LinuxGuestRecord" idea of a
header followed by the pages:

    magic      10 bytes  b"VMLABSAVE\\n"
    version    u32       FORMAT_VERSION
    hdr_len    u64       length of the JSON header
    header     JSON      config, vCPUs, load, console, p2m size, page count
    pfns       int64[n]  the guest pages that were populated
    content    uint64[n] each page's content stamp
    sha256     32 bytes  over everything above

A truncated, altered, foreign or other-version file raises SnapshotError and
restores nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from vmlab.errors import ConfigError, SnapshotError
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainConfig, config_from_dict, config_to_dict

MAGIC = b"VMLABSAVE\n"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class SaveImage:
    config: DomainConfig
    pfns: np.ndarray
    content: np.ndarray
    console: tuple[str, ...]
    load: float
    vcpus_online: int
    target_pages: int
    paused: bool
    macs: tuple[str, ...] = ()
    hvm_params: dict = field(default_factory=dict)   # HVMOP params (CALLBACK_IRQ: PV drivers loaded)


def write_save_file(path: str, hv, dom, *, resume_paused: bool = False) -> None:
    from vmlab.paging.foreign_map import foreign_read
    pfns = np.flatnonzero(dom.p2m != C.INVALID_MFN).astype(np.int64)
    content = foreign_read(hv, dom.domid, pfns)   # dom0 maps the guest's frames (xc_domain_save)
    header = {"config": config_to_dict(dom.config), "console": dom.console[-200:], "load": dom.load,
              "vcpus_online": dom.vcpus_online, "target_pages": dom.target_pages, "paused": resume_paused,
              "p2m_size": int(dom.p2m.size), "pages": int(pfns.size), "source_host": hv.host.name,
              "xen_version": list(C.XEN_VERSION), "macs": _vif_macs(dom),
              "hvm_params": {str(k): v for k, v in dom.hvm_params.items()}}
    hdr = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + struct.pack("<IQ", FORMAT_VERSION, len(hdr)) + hdr + pfns.tobytes() + content.tobytes()
    data = body + hashlib.sha256(body).digest()
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # a crash mid-write never leaves a half file under `path`
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SnapshotError(f"cannot write save file {path!r}: {e.strerror}; pick a writable path") from None


def read_save_file(path: str) -> SaveImage:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SnapshotError(f"cannot read save file {path!r}: {e.strerror}; give the path `xm save` wrote") from None
    where = f"save file {path!r}"
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{where} is not a vmlab save file (bad magic); restore a file written by `xm save`")
    fixed = len(MAGIC) + 12
    if len(data) < fixed + 32:
        raise SnapshotError(f"{where} is truncated ({len(data)} bytes); save the guest again")
    version, hdr_len = struct.unpack_from("<IQ", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise SnapshotError(f"{where} has format version {version}, this vmlab reads version {FORMAT_VERSION}; "
                            "restore it with the vmlab that saved it")
    body, digest = data[:-32], data[-32:]
    if hdr_len > len(body) - fixed:
        raise SnapshotError(f"{where} is truncated (header cut off); save the guest again")
    try:
        header = json.loads(body[fixed:fixed + hdr_len])
        n = int(header["pages"])
    except (ValueError, KeyError, TypeError):
        raise SnapshotError(f"{where} has a damaged header; save the guest again") from None
    if len(body) != fixed + hdr_len + 16 * n:
        raise SnapshotError(f"{where} is truncated or padded ({len(data)} bytes, expected {fixed + hdr_len + 16 * n + 32}); "
                            "save the guest again")
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotError(f"{where} fails its checksum (the file was altered); save the guest again")
    off = fixed + hdr_len
    pfns = np.frombuffer(body, dtype=np.int64, count=n, offset=off).copy()
    content = np.frombuffer(body, dtype=np.uint64, count=n, offset=off + 8 * n).copy()
    try:
        config = config_from_dict(header["config"])
    except (ConfigError, KeyError, TypeError) as e:
        raise SnapshotError(f"{where} holds an invalid config ({e}); save the guest again") from None
    if n and (pfns.min() < 0 or pfns.max() >= frames_max(config)):
        raise SnapshotError(f"{where} holds pages beyond the guest's maxmem; save the guest again")
    fields = _checked_fields(where, header, config, n)
    params = _field(where, header, "hvm_params", lambda v: isinstance(v, dict) and len(v) <= 64 and all(
        0 <= int(k) < 1 << 32 and type(x) is int and 0 <= x < 1 << 64 for k, x in v.items()), {})
    return SaveImage(config=config, pfns=pfns, content=content, **fields,
                     hvm_params={int(k): int(v) for k, v in params.items()})


def _field(where: str, header: dict, key: str, ok, default):
    """One header field, or SnapshotError naming it: the sha256 proves integrity, not origin."""
    v = header.get(key, default)
    try:
        good = ok(v)
    except (TypeError, ValueError, OverflowError):
        good = False
    if not good:
        raise SnapshotError(f"{where}: header field {key}={str(v)[:40]!r} is out of range; restore only files `xm save` wrote")
    return v


def _checked_fields(where: str, header: dict, config: DomainConfig, n: int) -> dict:
    """Bound-check every header field before anything is allocated or restored."""
    size = frames_max(config)
    _field(where, header, "p2m_size", lambda v: type(v) is int and v == size, size)
    whole = lambda lo, hi: lambda v: type(v) is int and lo <= v <= hi  # noqa: E731
    strings = lambda limit: lambda v: isinstance(v, list) and len(v) <= limit and all(isinstance(x, str) and len(x) <= 4096 for x in v)  # noqa: E731
    return {"vcpus_online": _field(where, header, "vcpus_online", whole(1, min(config.vcpus, C.MAX_VIRT_CPUS)), config.vcpus),
            "target_pages": _field(where, header, "target_pages", whole(0, size), n),
            "load": float(_field(where, header, "load", lambda v: type(v) in (int, float) and 0.0 <= v <= 1.0, 0.0)),
            "paused": _field(where, header, "paused", lambda v: type(v) is bool, False),
            "console": tuple(_field(where, header, "console", strings(10_000), [])),
            "macs": tuple(_field(where, header, "macs", strings(len(config.vifs) or 64), []))}


def check_fits(path: str, image: SaveImage, total_frames: int) -> None:
    """The guest the file describes must fit this host before a single frame is reserved."""
    need = frames_max(image.config)
    if need > total_frames or image.pfns.size > total_frames:
        raise SnapshotError(f"save file {path!r} claims a {image.config.max_mib} MiB guest but this host has "
                            f"{total_frames * 4 // 1024} MiB in all; restore it on a bigger server")


def _vif_macs(dom) -> list[str]:
    from vmlab.toolstack.devices import vif_macs
    return vif_macs(dom)


def frames_max(config: DomainConfig) -> int:
    from vmlab.hardware.memory import frames_from_mib
    return frames_from_mib(config.max_mib)
