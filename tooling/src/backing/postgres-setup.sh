root=$1
# postgres is 999, as in the official image; initdb needs its name.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
postgres:x:999:
nogroup:x:65534:
GROUP
# The socket's directory: /var/run is not a link to /run here.
mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/tmp"
chown -R 999:999 "$root/var/lib/postgresql" "$root/var/run/postgresql"
chmod 0700 "$root/var/lib/postgresql/data"
chmod 1777 "$root/tmp"
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
# No JIT for a development database: LLVM alone is 130 MB. No docs.
rm -rf "$root"/usr/lib/x86_64-linux-gnu/libLLVM* \
	"$root"/usr/lib/postgresql/*/lib/llvmjit* "$root"/usr/lib/postgresql/*/lib/bitcode \
	"$root/usr/share/doc" "$root/usr/share/man"
