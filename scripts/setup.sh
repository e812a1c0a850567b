#!/usr/bin/env bash
# Installs what a fresh machine lacks for emu: pnpm (from the npm registry, since corepack
# cannot fetch it here), the workspace's dependencies, and a build of every package.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pnpm $want from the npm registry"
  npm install --global --no-fund --no-audit "pnpm@$want" >/dev/null
fi
pnpm install --frozen-lockfile --reporter=append-only
pnpm build
