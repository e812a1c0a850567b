#!/usr/bin/env bash
# Makes sure tshark (Wireshark's command-line reader) is installed: the pcap tests read their
# captures back with it. Idempotent: does nothing when tshark is already there. Installing needs
# root and apt-get (Debian/Ubuntu, as in CI); otherwise it says what to do and fails.
set -euo pipefail

if command -v tshark >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tshark: tshark is not installed and there is no apt-get here: install tshark (Wireshark's CLI) with this system's package manager" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-tshark: tshark is not installed and installing it needs root: sudo apt-get install -y tshark" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture; the tests only read files: no.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
echo "ensure-tshark: installing tshark with apt-get" >&2
if ! apt-get install -y --no-install-recommends tshark >&2; then
  # A fresh machine (or container) may have no package lists yet.
  apt-get update >&2
  apt-get install -y --no-install-recommends tshark >&2
fi
command -v tshark >/dev/null 2>&1 || {
  echo "ensure-tshark: apt-get finished but tshark is still not on PATH" >&2
  exit 1
}
