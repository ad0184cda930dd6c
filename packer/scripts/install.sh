#!/bin/sh
# Installs the Tributary broker into the image being built (run by Packer as
# root on the build instance). It needs the network only now, at build time:
# nothing installed here fetches anything when an instance boots.
#
# Inputs (environment): BROKER_VERSION, the version the binary must report;
# FILES, the directory holding the uploaded files (packer/files/); BINARY,
# the uploaded binary (default /tmp/tributary-broker); ROOT, a directory to
# install into instead of / (tests; empty on the build instance).
set -eu

: "${BROKER_VERSION:?BROKER_VERSION must be set}"
: "${FILES:?FILES must be set}"
BINARY=${BINARY:-/tmp/tributary-broker}
ROOT=${ROOT:-}
# A fixed uid/gid: the data volume outlives instances and images, and its
# files must belong to the same tributary user in every future image.
TRIBUTARY_UID=9092

log() { printf 'install.sh: %s\n' "$*"; }

log "checking the broker binary"
chmod 0755 "$BINARY"
reported=$("$BINARY" version)
if [ "$reported" != "$BROKER_VERSION" ]; then
	log "the binary reports version '$reported', but the image is being built as '$BROKER_VERSION'" >&2
	exit 1
fi

log "installing packages the boot agent needs (xfsprogs for mkfs.xfs/xfs_growfs, util-linux for blkid)"
if command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends xfsprogs util-linux
	apt-get clean
	rm -rf /var/lib/apt/lists/*
elif command -v dnf >/dev/null 2>&1; then
	dnf install -y -q xfsprogs util-linux
	dnf clean all
else
	log "neither apt-get nor dnf found: install xfsprogs and util-linux yourself" >&2
	exit 1
fi

log "creating the tributary user (uid/gid $TRIBUTARY_UID)"
if ! getent group tributary >/dev/null; then
	groupadd --system --gid "$TRIBUTARY_UID" tributary
fi
if ! getent passwd tributary >/dev/null; then
	useradd --system --uid "$TRIBUTARY_UID" --gid tributary --home-dir /var/lib/tributary \
		--no-create-home --shell /usr/sbin/nologin --comment "Tributary broker" tributary
fi

log "installing the binary, the unit, kernel settings and limits"
install -D -m 0755 -o root -g root "$BINARY" "$ROOT/usr/local/bin/tributary-broker"
# The data volume's mount point; it belongs to root until the boot agent
# mounts the volume and hands the volume's root directory to tributary.
install -d -m 0755 -o root -g root "$ROOT/var/lib/tributary"
install -D -m 0644 -o root -g root "$FILES/tributary-broker.service" "$ROOT/etc/systemd/system/tributary-broker.service"
install -D -m 0644 -o root -g root "$FILES/tributary-volume-watch.service" "$ROOT/etc/systemd/system/tributary-volume-watch.service"
install -D -m 0644 -o root -g root "$FILES/60-tributary.conf" "$ROOT/etc/sysctl.d/60-tributary.conf"
install -D -m 0644 -o root -g root "$FILES/60-tributary-limits.conf" "$ROOT/etc/security/limits.d/60-tributary.conf"
if [ -f "$FILES/broker-image.md" ]; then
	install -D -m 0644 -o root -g root "$FILES/broker-image.md" "$ROOT/usr/local/share/doc/tributary/broker-image.md"
fi

log "enabling the services (they start on the next boot, not now)"
systemctl daemon-reload
systemctl enable tributary-broker.service tributary-volume-watch.service
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify "$ROOT/etc/systemd/system/tributary-broker.service" "$ROOT/etc/systemd/system/tributary-volume-watch.service"
fi

# A broker must not change under itself: images are rebuilt and rolled
# instead. Timers that upgrade packages would also reach for the network.
for timer in apt-daily.timer apt-daily-upgrade.timer dnf-makecache.timer; do
	if systemctl list-unit-files "$timer" >/dev/null 2>&1; then
		systemctl disable "$timer" >/dev/null 2>&1 || true
		systemctl mask "$timer" >/dev/null 2>&1 || true
	fi
done

log "cleaning up"
rm -rf "$BINARY" "$FILES"
# Let every instance of this image run cloud-init afresh (its own SSH host
# keys and authorized key); the boot document in user data is JSON, which
# cloud-init ignores.
if command -v cloud-init >/dev/null 2>&1; then
	cloud-init clean --logs
fi
log "done: tributary-broker $BROKER_VERSION installed"
