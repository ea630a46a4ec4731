#!/usr/bin/env bash
# The demo behind `make demo`: mount the example bundle, run its process inside,
# show what it wrote (in the memory upper) and that the host rootfs is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
SANDBOXFS=.venv/bin/sandboxfs
bundle=examples/bundle
bash examples/make-rootfs.sh

tree_digest() {  # names, types, modes, sizes and bytes of a host tree
    (cd "$1" && find . -printf '%p %y %m %s %l\n' | LC_ALL=C sort && \
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

mnt="$(mktemp -d /tmp/sandboxfs-demo.XXXXXX)"
cleanup() { "$SANDBOXFS" umount "$mnt" >/dev/null 2>&1 || true; rmdir "$mnt" 2>/dev/null || true; }
trap cleanup EXIT

before="$(tree_digest "$bundle/rootfs")"
echo "== sandboxfs mount $bundle $mnt"
"$SANDBOXFS" mount "$bundle" "$mnt"
grep " $mnt " /proc/mounts

echo "== running the bundle's process.args, chrooted in the mount, in a private mount namespace"
mapfile -d '' -t proc < <(.venv/bin/python - "$bundle/config.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["process"]
out = [p.get("cwd", "/")] + [str(len(p.get("env", [])))] + p.get("env", []) + p["args"]
sys.stdout.write("\0".join(out) + "\0")
PY
)
cwd="${proc[0]}"; nenv="${proc[1]}"
env_vars=("${proc[@]:2:$nenv}"); args=("${proc[@]:$((2 + nenv))}")
unshare --mount --propagation private \
    chroot "$mnt" /bin/env -i "${env_vars[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "${args[@]}"

echo "== what the process wrote lives in the memory upper:"
echo "-- $mnt/root/greeting: $(cat "$mnt/root/greeting")"
echo "-- $mnt/var/log/app/log: $(cat "$mnt/var/log/app/log")"
echo "-- $mnt/etc/issue: $(ls "$mnt/etc/issue" 2>&1 | sed 's/^ls: //')"
echo "== the host rootfs is untouched:"
echo "-- $bundle/rootfs/root/greeting: $(ls "$bundle/rootfs/root/greeting" 2>&1 | sed 's/^ls: //')"
echo "-- $bundle/rootfs/etc/motd: $(cat "$bundle/rootfs/etc/motd")"
echo "-- $bundle/rootfs/etc/issue: $(cat "$bundle/rootfs/etc/issue")"
after="$(tree_digest "$bundle/rootfs")"
if [ "$before" = "$after" ]; then
    echo "-- host rootfs digest before and after: $before (identical)"
else
    echo "!! host rootfs changed: $before -> $after" >&2
    exit 1
fi
echo "== sandboxfs umount $mnt"
"$SANDBOXFS" umount "$mnt"
echo "demo done"
