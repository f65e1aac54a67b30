#!/bin/sh
# Adds the host's Rust toolchain and cargo-chef to the builder base. mmdebstrap
# runs this as a customize hook with the root filesystem in $1; the xtask sets
# RUST_SYSROOT (the pinned toolchain's `rustc --print sysroot`) and CARGO_CHEF.
set -eu
root=$1

# rustc finds its libraries relative to itself, so the sysroot can be laid
# over /usr/local. Documentation and the standard library's sources are not
# needed to build.
tar -C "$RUST_SYSROOT" --exclude=./share/doc --exclude=./lib/rustlib/src -cf - . |
	tar -C "$root/usr/local" -xf -
install -D -m 0755 "$CARGO_CHEF" "$root/usr/local/cargo/bin/cargo-chef"

# Fail here, not in the image build, if something did not make it.
chroot "$root" /usr/local/bin/cargo --version
chroot "$root" /usr/local/cargo/bin/cargo-chef --version
