"""Save files are untrusted input: the sha256 proves integrity, not origin.

A file re-hashed after its header was edited is checked field by field before a single
frame is reserved (xc_domain_restore reads the guest's size and vCPUs from the image and
libxc refuses what the host cannot give: xc_domain_setmaxmem / XEN_DOMCTL_max_vcpus,
MAX_VIRT_CPUS), so a forged file is one SnapshotError line, never a MemoryError.
"""

import hashlib
import json
import struct

import pytest

from vmlab.errors import SnapshotError
from vmlab.hardware.memory import frames_from_mib
from vmlab.toolstack.cli import main
from vmlab.toolstack.snapshot import MAGIC

from tests.helpers import make_xm, pv


def forge(src, dst, **fields):
    """Rewrite header fields (config.<key> for the config) and re-hash, as an attacker would."""
    data = src.read_bytes()
    fixed = len(MAGIC) + 12
    version, hdr_len = struct.unpack_from("<IQ", data, len(MAGIC))
    header = json.loads(data[fixed:fixed + hdr_len])
    for k, v in fields.items():
        if k.startswith("config_"):
            header["config"][k[7:]] = v
        else:
            header[k] = v
    hdr = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + struct.pack("<IQ", version, len(hdr)) + hdr + data[fixed + hdr_len:-32]
    dst.write_bytes(body + hashlib.sha256(body).digest())


@pytest.fixture
def saved(tmp_path):
    xm = make_xm()
    xm.create(pv("vm1", memory=64))
    path = tmp_path / "vm1.save"
    xm.save("vm1", str(path))
    return xm, path


@pytest.mark.parametrize("fields", [
    {"config_memory_mib": 10**9, "p2m_size": frames_from_mib(10**9), "target_pages": 0},
    {"config_memory_mib": 10**9},
    {"p2m_size": 10**12},
    {"vcpus_online": 10**6},
    {"vcpus_online": 0},
    {"load": 1e300},
    {"target_pages": -5},
    {"paused": "yes"},
    {"console": [1, 2]},
], ids=["1e9-MiB-consistent", "1e9-MiB", "p2m", "vcpus", "no-vcpus", "load", "target", "paused", "console"])
def test_a_rehashed_header_out_of_range_is_one_line_and_restores_nothing(saved, tmp_path, fields):
    xm, path = saved
    bad = tmp_path / "forged.save"
    forge(path, bad, **fields)
    free = xm.hv.memory.free_frames
    with pytest.raises(SnapshotError) as e:
        xm.restore(str(bad))
    assert "\n" not in str(e.value)
    assert xm.hv.memory.free_frames == free and len(xm.hv.domains) == 1
    xm.restore(str(path))   # the genuine file still restores


def test_the_cli_refuses_a_forged_save_file_in_one_line_with_the_state_unchanged(tmp_path, capsys):
    state, cfg = tmp_path / "s.sqlite", tmp_path / "vm1.cfg"
    cfg.write_text("name = 'vm1'\nmemory = 64\nkernel = '/boot/vmlinuz-xen'\n")
    assert main(["--state", str(state), "xm", "create", str(cfg)]) == 0
    assert main(["--state", str(state), "xm", "save", "vm1", str(tmp_path / "vm1.save")]) == 0
    forge(tmp_path / "vm1.save", tmp_path / "big.save", config_memory_mib=10**9, p2m_size=frames_from_mib(10**9))
    capsys.readouterr()
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    assert main(["--state", str(state), "xm", "restore", str(tmp_path / "big.save")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "claims a 1000000000 MiB guest" in err
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
