# syntax=docker/dockerfile:1
# The certbound binary on a distroless, non-root base.
#
#   docker build -t certbound .
#   docker run --rm certbound --help
#
# A glibc build: a static musl binary would need the x86_64-unknown-linux-musl target, which the
# build machines do not have. The binary links only glibc (and libgcc), which cc-debian12 provides.
# aws-lc-sys builds its C code with the image's gcc (cmake installed as its fallback builder).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Reproducibility: the lock file pins every dependency; no network beyond crates.io.
COPY . .
ENV CARGO_TERM_COLOR=never \
    SOURCE_DATE_EPOCH=0
RUN cargo build --release --locked --bin certbound \
 && install -D -m 0755 target/release/certbound /out/certbound

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/certbound /usr/local/bin/certbound
# 65532:65532, the image's `nonroot` user.
USER nonroot:nonroot
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/certbound"]
CMD ["--help"]
