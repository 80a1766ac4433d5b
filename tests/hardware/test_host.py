import pytest

from vmlab.errors import ConfigError
from vmlab.hardware.host import Host, HostSpec, StorageKind, parse_size_mib


def test_default_host_keeps_ovs_repository_on_shared_storage():
    host = Host()
    assert host.storage_for("/OVS/running_pool/vm1/System.img").storage is StorageKind.NFS
    assert host.storage_for("/var/lib/xen/images/x.img").storage is StorageKind.LOCAL
    assert StorageKind.NFS.shared and not StorageKind.LOCAL.shared


@pytest.mark.parametrize("kwargs, match", [
    ({"pcpus": 0}, "pcpus=0"), ({"memory_mib": 100}, "memory_mib=100"), ({"name": "a b"}, "host name"),
])
def test_bad_host_specs_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        HostSpec(**kwargs)


@pytest.mark.parametrize("text, mib", [("512", 512), ("512m", 512), ("2g", 2048), ("1t", 1 << 20), ("65536k", 64), (256, 256)])
def test_sizes_take_xm_suffixes(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["lots", "1.5k", "-3"])
def test_bad_sizes_name_the_value(text):
    with pytest.raises(ConfigError, match="size|MiB"):
        parse_size_mib(text)
