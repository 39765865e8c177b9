#!/usr/bin/env bash
# `make install`: a source install of what the .deb holds, under PREFIX (default /usr/local), staged under DESTDIR
# when it is set. The unit is rewritten for the installed paths (PREFIX/bin/precisiond, SYSCONFDIR/precisiond).
# An existing configuration is never overwritten: the example goes next to it as config.toml.example.
# Only with an empty DESTDIR, as root, on a systemd machine: the system user is created (systemd-sysusers) and
# systemd reloads its units; enabling and starting stay the admin's call (printed at the end).
#
# env (the Makefile passes its variables):
#   PREFIX       default /usr/local      (/usr for a distribution-like layout)
#   DESTDIR      default empty           (a staging root: nothing outside it is touched)
#   SYSCONFDIR   default /etc
#   BIN          default target/release/precisiond (target/aarch64-unknown-linux-gnu/release/precisiond for a
#                Jetson root file system)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
BIN=${BIN:-target/release/precisiond}
PREFIX=${PREFIX%/}
[[ $PREFIX == /* ]] || { echo "error: PREFIX must be an absolute path, got '$PREFIX'" >&2; exit 1; }
[[ $SYSCONFDIR == /* ]] || { echo "error: SYSCONFDIR must be an absolute path, got '$SYSCONFDIR'" >&2; exit 1; }
[[ -z $DESTDIR || $DESTDIR == /* ]] || DESTDIR=$ROOT/$DESTDIR
[[ -x $BIN ]] || { echo "error: $BIN not found; run 'make build' (or 'make aarch64')" >&2; exit 1; }

bindir=$PREFIX/bin
# systemd looks in /usr/local/lib/systemd/system and /usr/lib/systemd/system; sysusers in the matching sysusers.d.
unitdir=$PREFIX/lib/systemd/system
sysusersdir=$PREFIX/lib/sysusers.d
mandir=$PREFIX/share/man/man1
docdir=$PREFIX/share/doc/precisiond
confdir=$SYSCONFDIR/precisiond

say() { echo "install: $*"; }

install -D -m 755 "$BIN" "$DESTDIR$bindir/precisiond"
say "$DESTDIR$bindir/precisiond"

unit_tmp=$(mktemp)
trap 'rm -f "$unit_tmp"' EXIT
sed -e "s|/usr/bin/precisiond|$bindir/precisiond|g" -e "s|/etc/precisiond/|$confdir/|g" \
  systemd/precisiond.service >"$unit_tmp"
install -D -m 644 "$unit_tmp" "$DESTDIR$unitdir/precisiond.service"
say "$DESTDIR$unitdir/precisiond.service"

install -D -m 644 packaging/precisiond.sysusers "$DESTDIR$sysusersdir/precisiond.conf"
install -D -m 644 packaging/precisiond.1 "$DESTDIR$mandir/precisiond.1"
install -D -m 644 README.md "$DESTDIR$docdir/README.md"
say "$DESTDIR$sysusersdir/precisiond.conf, $DESTDIR$mandir/precisiond.1, $DESTDIR$docdir/README.md"

if [[ -e $DESTDIR$confdir/config.toml ]]; then
  install -D -m 644 packaging/config.toml "$DESTDIR$confdir/config.toml.example"
  say "kept $DESTDIR$confdir/config.toml; the example is $DESTDIR$confdir/config.toml.example"
else
  install -D -m 644 packaging/config.toml "$DESTDIR$confdir/config.toml"
  say "$DESTDIR$confdir/config.toml"
fi

if [[ -z $DESTDIR && $(id -u) == 0 ]] && command -v systemd-sysusers >/dev/null; then
  systemd-sysusers "$sysusersdir/precisiond.conf"
  say "system user precisiond (group video) ensured with systemd-sysusers"
  if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
    say "systemd reloaded; start with: systemctl enable --now precisiond"
  fi
elif [[ -z $DESTDIR ]]; then
  say "as root, create the user with: systemd-sysusers $sysusersdir/precisiond.conf"
fi
