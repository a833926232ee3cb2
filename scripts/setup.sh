#!/usr/bin/env bash
# Installs everything midogw needs on Debian 12: DPDK 22.11 and its headers, the toolchain pieces
# bindgen uses, the network tools the tests and the demo drive, the Rust test runner and cargo-fuzz.
# Idempotent and quiet when everything is already there. Needs root (apt-get, namespaces).
set -euo pipefail

PACKAGES=(
  # DPDK: runtime, PMD plugins (net_ring, net_af_packet, net_memif, ...), headers, dpdk-testpmd
  dpdk dpdk-dev libdpdk-dev pkg-config
  # bindgen needs libclang; the shim is compiled with the system C compiler
  clang libclang-dev build-essential
  # network namespaces, veth pairs, traffic for tests and the demo
  iproute2 iputils-ping ethtool procps curl python3
  # tests/midonetclient.rs: a virtualenv for the MidoNet project's own Python client (from PyPI)
  python3-venv
  # tests/gateway_e2e.rs: traceroute through the gateway, captures of its GRE packets decoded by tshark
  traceroute tcpdump tshark
  # perf/: instruction counts per packet, the font the PNG charts are labelled with
  valgrind fonts-dejavu-core
  # perf/: Open vSwitch's DPDK datapath (3.1 on DPDK 22.11), the peer of the gateway scenarios; the
  # runner starts its own private ovsdb-server/ovs-vswitchd-dpdk (the package's service is not used);
  # tests/gateway_e2e.rs runs its plain ovs-vswitchd (userspace datapath) as a GRE compute host
  openvswitch-switch-dpdk openvswitch-switch
  # control/: the ZooKeeper store's tests run a real standalone server (3.8, with OpenJDK)
  zookeeper
)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh: must run as root (installs Debian packages; tests create network namespaces)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
# Cargo.toml's rust-version; Debian 12's own rustc/cargo packages (1.63) are too old to build midogw
# or to install cargo-nextest, so say so here rather than through a compile error.
rustc_version=$(rustc --version 2>/dev/null | cut -d' ' -f2)
if ! printf '%s\n' 1.90.0 "${rustc_version:-0}" | sort -V -C; then
  echo "setup: Rust ${rustc_version:-(no rustc)} is older than 1.90, which midogw needs; install it with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --quiet --locked cargo-nextest
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  # scripts/fuzz.sh: the flowtable fuzz targets, on stable with --sanitizer none
  echo "setup: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz --version ^0.13
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# tests/midonetclient.rs drives the REST API with the MidoNet project's own client, pinned.
MIDONETCLIENT_VENV=/opt/midogw-test/midonetclient
if ! "$MIDONETCLIENT_VENV/bin/python" -c 'import midonetclient' >/dev/null 2>&1; then
  echo "setup: installing midonetclient 5.2.0 (PyPI) into $MIDONETCLIENT_VENV"
  rm -rf "$MIDONETCLIENT_VENV"
  /usr/bin/python3 -m venv "$MIDONETCLIENT_VENV"
  "$MIDONETCLIENT_VENV/bin/pip" install --quiet --disable-pip-version-check \
    'midonetclient==5.2.0' 'httplib2==0.32.1' 'WebOb==1.8.11'
fi

# tests/appliance_live.rs: a real Prometheus server scrapes the appliance's /metrics and promtool
# lints it. Only the binaries, unpacked from Debian's package: installing it would start its service.
PROMETHEUS_ROOT=/opt/midogw-test/prometheus
if ! "$PROMETHEUS_ROOT/usr/bin/promtool" --version >/dev/null 2>&1 || [ ! -x "$PROMETHEUS_ROOT/usr/bin/prometheus" ]; then
  echo "setup: unpacking Debian's prometheus binaries into $PROMETHEUS_ROOT"
  download=$(mktemp -d)
  if ! (cd "$download" && apt-get download -qq prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$download" && apt-get download -qq prometheus >/dev/null)
  fi
  rm -rf "$PROMETHEUS_ROOT"
  mkdir -p "$PROMETHEUS_ROOT"
  dpkg-deb -x "$download"/prometheus_*.deb "$PROMETHEUS_ROOT"
  rm -rf "$download"
fi

if ! pkg-config --atleast-version=22.11 libdpdk; then
  echo "setup: DPDK >= 22.11 still not visible to pkg-config after install" >&2
  exit 1
fi
