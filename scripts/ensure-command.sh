#!/usr/bin/env bash
# ensure-command.sh COMMAND PACKAGE: makes sure COMMAND is on PATH, installing Debian's PACKAGE with
# apt-get when it is not (as root; otherwise it says what to run and fails). Idempotent.
set -euo pipefail
cmd=$1 pkg=$2
command -v "$cmd" >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "ensure-command: $cmd is not installed: install the package $pkg (as root: apt-get install -y $pkg)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure-command: installing $pkg with apt-get" >&2
# A fresh machine (or container) may have no package lists yet.
apt-get install -y --no-install-recommends "$pkg" >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends "$pkg" >&2; }
command -v "$cmd" >/dev/null 2>&1 || { echo "ensure-command: $pkg is installed but $cmd is still not on PATH" >&2; exit 1; }
