#!/usr/bin/env bash
# A minimal, non-root OCI image of the `certbound` binary, built with buildah (Debian package;
# installed when missing) without pulling any base image: the image holds the binary, the
# shared libraries `ldd` says it links (glibc, libgcc), the system CA bundle (the binary trusts
# the platform roots, rustls-native-certs) and a passwd/group naming the `nonroot` user
# (65532:65532, as distroless does). The Dockerfile next to it builds the same image on a
# machine that can pull `rust:` and `distroless/cc` base images; this script is for machines that
# reach only Debian and crates.io (CI here).
#
# Usage: bash scripts/image.sh [BINARY] [TAG]
#   BINARY  default target/release/certbound (built with --release --locked when missing)
#   TAG     default certbound:<version>
# Then it runs `certbound --version` inside the image as the image's user and checks the image
# config (non-root user, entrypoint). Exit status 0 means the image built and started.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v buildah >/dev/null 2>&1; then
  echo "installing buildah (Debian package)"
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi
# No daemon, no user namespaces needed: chroot isolation, vfs storage in a private root.
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs
store=$(mktemp -d "${TMPDIR:-/tmp}/certbound-image.XXXXXX")
trap 'buildah --root "$store/root" --runroot "$store/run" rm --all >/dev/null 2>&1 || true; rm -rf "$store"' EXIT
bah() { buildah --root "$store/root" --runroot "$store/run" "$@"; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
binary=${1:-target/release/certbound}
tag=${2:-certbound:$version}
if [ ! -x "$binary" ]; then
  cargo build --release --locked --bin certbound
fi

rootfs="$store/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/home/nonroot" "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/usr/local/bin/certbound"
# The dynamic loader and every library the binary links, at the paths ldd prints.
ldd "$binary" | grep -o '/[^ )]*' | sort -u | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chown -R 65532:65532 "$rootfs/home/nonroot"

ctr=$(bah from scratch)
bah copy "$ctr" "$rootfs/" / >/dev/null
bah config --user 65532:65532 --workingdir /home/nonroot \
  --entrypoint '["/usr/local/bin/certbound"]' --cmd '--help' \
  --label org.opencontainers.image.title=certbound \
  --label org.opencontainers.image.version="$version" "$ctr"
bah commit --quiet "$ctr" "$tag" >/dev/null

# Smoke test: the binary starts inside the image, as the image's (non-root) user.
user=$(bah inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
[ "$user" = "65532:65532" ] || { echo "image user is '$user', expected 65532:65532"; exit 1; }
out=$(bah run --user 65532:65532 "$ctr" -- /usr/local/bin/certbound --version)
case "$out" in
  *"$version"*) ;;
  *) echo "certbound --version in the image printed '$out'"; exit 1 ;;
esac
mkdir -p dist
bah push --quiet "$tag" "oci-archive:dist/certbound-$version-image.tar" >/dev/null
echo "image $tag built (user $user, $(du -h "dist/certbound-$version-image.tar" | cut -f1)): dist/certbound-$version-image.tar; in it: $out"
