#!/bin/sh
# Install what tools/qemu_groundtruth/run.py needs, from Debian packages only (run as root).
#
#   qemu-system-x86   the source and target QEMU (Debian 12: QEMU 7.2)
#   busybox-static    /bin/sh and friends for the initramfs guest
#   gcc, libc6-dev    to build the static memory dirtier (dirtier.c)
#   a guest kernel    /boot/vmlinuz-* if one is there; otherwise the .deb of the kernel that
#                     linux-image-amd64 depends on is *downloaded and unpacked* into
#                     tools/qemu_groundtruth/.cache/ (not installed: installing it would run
#                     initramfs-tools hooks on this host for nothing).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE="$HERE/.cache"
mkdir -p "$CACHE"

need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file -L /bin/busybox 2>/dev/null | grep -q static \
    || need="$need busybox-static"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need="$need libc6-dev"
command -v file >/dev/null 2>&1 || need="$need file"

if [ -n "$need" ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
fi
# busybox-static may not have been detected as static if `file` was missing on the first pass
if ! file -L /bin/busybox | grep -q static; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static
fi

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kernel" ] && ! ls "$CACHE"/boot/vmlinuz-* >/dev/null 2>&1; then
    [ -n "$(apt-cache depends linux-image-amd64 2>/dev/null)" ] || apt-get update -q
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    echo "downloading guest kernel package $pkg (unpacked into $CACHE, not installed)"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"   # apt-get download runs as _apt where it can
    (cd "$tmp" && apt-get download "$pkg" && dpkg-deb -x "$pkg"_*.deb "$tmp/x")
    mkdir -p "$CACHE/boot"
    cp "$tmp"/x/boot/vmlinuz-* "$CACHE/boot/"   # only the kernel image: the guest needs no modules
    rm -rf "$tmp"
fi

qemu-system-x86_64 --version | head -n 1
echo "busybox: $(/bin/busybox | head -n 1)"
echo "kernel: $(ls /boot/vmlinuz-* "$CACHE"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)"
