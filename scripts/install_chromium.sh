#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never a downloaded one).
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
