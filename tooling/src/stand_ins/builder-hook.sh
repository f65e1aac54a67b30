#!/bin/sh
# Adds the host's Rust toolchain, cargo-chef and cargo-auditable to the builder
# base. mmdebstrap runs this as a customize hook with the root filesystem in $1;
# the xtask sets RUST_SYSROOT (the pinned toolchain's `rustc --print sysroot`),
# CARGO_CHEF and CARGO_AUDITABLE.
set -eu
root=$1

# rustc finds its libraries relative to itself, so the sysroot can be laid
# over /usr/local. Documentation and the standard library's sources are not
# needed to build.
tar -C "$RUST_SYSROOT" --exclude=./share/doc --exclude=./lib/rustlib/src -cf - . |
	tar -C "$root/usr/local" -xf -
install -D -m 0755 "$CARGO_CHEF" "$root/usr/local/cargo/bin/cargo-chef"
install -D -m 0755 "$CARGO_AUDITABLE" "$root/usr/local/cargo/bin/cargo-auditable"

# Fail here, not in the image build, if something did not make it.
chroot "$root" /usr/local/bin/cargo --version
chroot "$root" /usr/local/cargo/bin/cargo-chef --version
# cargo-auditable runs the cargo that CARGO names, which is the host's here.
chroot "$root" env -u CARGO PATH=/usr/local/bin:/usr/bin:/bin /usr/local/cargo/bin/cargo-auditable auditable --version
