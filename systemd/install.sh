#!/bin/sh
# Installs huijiao as a systemd service on this machine (run as root):
#
#   cargo build --release
#   sudo systemd/install.sh target/release/huijiao
#
# It installs the binary as /usr/bin/huijiao, the unit, the service user `huijiao`
# and the clerks' group `huijiao-inbox` (systemd-sysusers), and the folders with
# their owners and modes (systemd-tmpfiles): /var/lib/huijiao (store, private),
# /etc/huijiao (config and keys), /srv/huijiao/{inbox,processed,rejected} (clerks).
# It does not start anything: the README's "Install as a service" goes on from here.
# DESTDIR=/some/root installs into another root (used by the tests).
set -eu
BIN=${1:-target/release/huijiao}
HERE=$(dirname "$0")
ROOT=${DESTDIR:-}
if [ ! -x "$BIN" ]; then
    echo "install.sh: $BIN is not an executable (build it: cargo build --release)" >&2
    exit 2
fi
install -d "$ROOT/usr/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/sysusers.d" "$ROOT/etc/tmpfiles.d" "$ROOT/usr/share/doc/huijiao"
install -m 0755 "$BIN" "$ROOT/usr/bin/huijiao"
install -m 0644 "$HERE/huijiao.service" "$ROOT/etc/systemd/system/huijiao.service"
install -m 0644 "$HERE/huijiao.sysusers" "$ROOT/etc/sysusers.d/huijiao.conf"
install -m 0644 "$HERE/huijiao.tmpfiles" "$ROOT/etc/tmpfiles.d/huijiao.conf"
[ -f "$HERE/../README.md" ] && install -m 0644 "$HERE/../README.md" "$ROOT/usr/share/doc/huijiao/README.md"
if [ -n "$ROOT" ]; then
    systemd-sysusers --root="$ROOT" "$ROOT/etc/sysusers.d/huijiao.conf"
    systemd-tmpfiles --create --root="$ROOT" "$ROOT/etc/tmpfiles.d/huijiao.conf"
else
    systemd-sysusers /etc/sysusers.d/huijiao.conf
    systemd-tmpfiles --create /etc/tmpfiles.d/huijiao.conf
    systemctl daemon-reload
fi
echo "installed huijiao $("$ROOT/usr/bin/huijiao" --version 2>/dev/null | cut -d' ' -f2)"
if [ ! -f "$ROOT/etc/huijiao/huijiao.toml" ]; then
    echo "next: huijiao init --node-id YOUR_CODE --parent PARENT_HOST:7443 PARENT_CODE   (writes /etc/huijiao/huijiao.toml)"
fi
echo "then: put ca.crt, crl.pem, NODE.crt, NODE.key (chown huijiao, chmod 600 the key) in /etc/huijiao,"
echo "      huijiao config check --config /etc/huijiao/huijiao.toml && systemctl enable --now huijiao"
