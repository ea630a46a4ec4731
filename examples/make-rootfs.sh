#!/usr/bin/env bash
# Builds examples/bundle/rootfs: a small busybox root filesystem.
# Made at setup from Debian's busybox-static, never committed as a binary.
# Idempotent: does nothing if the rootfs is already there and complete.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rootfs="$here/bundle/rootfs"
busybox="$(command -v busybox || echo /bin/busybox)"
[ -x "$rootfs/bin/busybox" ] && [ -f "$here/bundle/.rootfs-complete" ] && exit 0
rm -rf "$rootfs" "$here/bundle/.rootfs-complete"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/log,proc,sys,dev,home}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
cat > "$rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$rootfs/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
echo "demo" > "$rootfs/etc/hostname"
echo "Welcome to the sandboxfs demo rootfs." > "$rootfs/etc/motd"
echo "busybox rootfs for sandboxfs" > "$rootfs/etc/issue"
touch "$here/bundle/.rootfs-complete"
