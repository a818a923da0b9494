#!/usr/bin/env bash
# Installs the system packages the tests need, idempotently: Debian's Chromium for the browser
# tests (Playwright drives /usr/bin/chromium; no browser is downloaded) with fonts for readable
# screenshots, cowsay, git and npm for workflow examples and test assets, and the Playwright Python
# package for the given interpreter, and wrk (the C load generator of the closed-loop benchmarks).
#   usage: scripts/test_system_deps.sh [python]      (default: python3)
set -euo pipefail
PYTHON="${1:-${PYTHON:-python3}}"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s fonts-liberation >/dev/null 2>&1 || need_apt+=(fonts-liberation)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need_apt+=(fonts-dejavu-core)
[ -x /usr/games/cowsay ] || need_apt+=(cowsay)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! "$PYTHON" -c "import playwright.async_api" >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet "playwright>=1.45"
fi
/usr/bin/chromium --version 2>/dev/null
