#!/bin/sh
# Assembles the distroless-style runtime base. mmdebstrap runs this script as a
# hook with the root filesystem in $1 and the stage in MMDEBSTRAP_HOOK.
set -eu
root=$1

case "$MMDEBSTRAP_HOOK" in
setup)
	# Tell apt that debconf and an awk are present, so that resolving the
	# package set does not pull them in: tzdata and base-files depend on them
	# for their maintainer scripts, which an extracted image never runs.
	mkdir -p "$root/var/lib/dpkg"
	cat >"$root/var/lib/dpkg/status" <<'STATUS'
Package: debconf
Status: install ok installed
Version: 1.5.91
Architecture: all
Provides: debconf-2.0

Package: mawk
Status: install ok installed
Version: 1.3.4.20250131-1
Architecture: amd64
Provides: awk

STATUS
	;;
extract)
	# One status file and one md5sums file per package, as distroless has them
	# (its PACKAGE_METADATA.md): what scanners read in place of dpkg's status.
	statusd="$root/var/lib/dpkg/status.d"
	mkdir -p "$statusd"
	for deb in "$root"/var/cache/apt/archives/*.deb; do
		package=$(dpkg-deb --field "$deb" Package)
		dpkg-deb --field "$deb" >"$statusd/$package"
		control=$(mktemp -d)
		dpkg-deb --control "$deb" "$control"
		if [ -f "$control/md5sums" ]; then
			cp "$control/md5sums" "$statusd/$package.md5sums"
		fi
		rm -rf "$control"
	done

	# The CA bundle's data only: the ca-certificates package would bring
	# openssl and debconf along.
	certs=$(mktemp -d)
	(cd "$certs" && APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get download -q -o APT::Sandbox::User=root ca-certificates)
	dpkg-deb --extract "$certs"/ca-certificates_*.deb "$certs/root"
	mkdir -p "$root/etc/ssl/certs" "$root/usr/share/doc/ca-certificates"
	cat "$certs"/root/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
	cp "$certs/root/usr/share/doc/ca-certificates/copyright" "$root/usr/share/doc/ca-certificates/"
	rm -rf "$certs"

	# The users distroless has: root, nobody and nonroot (65532).
	cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
	cat >"$root/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
staff:x:50:
nogroup:x:65534:
nonroot:x:65532:
GROUP
	chmod 0644 "$root/etc/passwd" "$root/etc/group"
	mkdir -p "$root/home/nonroot" "$root/root" "$root/tmp"
	chown 65532:65532 "$root/home/nonroot"
	chmod 0700 "$root/home/nonroot" "$root/root"
	chmod 1777 "$root/tmp"

	# No package manager state: apt's and dpkg's own files, the fake status
	# above, and the host's resolver configuration (the engine provides one).
	rm -rf "$root/etc/apt" "$root/var/cache/apt" "$root/var/lib/apt" \
		"$root/var/lib/dpkg/status" "$root/var/lib/dpkg/arch" \
		"$root/var/lib/dpkg/alternatives" "$root/var/lib/dpkg/info" \
		"$root/var/lib/dpkg/triggers" "$root/var/lib/dpkg/updates" \
		"$root/etc/dpkg/dpkg.cfg.d" "$root/var/log/apt"
	: >"$root/etc/resolv.conf"
	: >"$root/etc/hostname"
	chmod 0644 "$root/etc/resolv.conf" "$root/etc/hostname"
	;;
esac
