#!/usr/bin/env bash
# Installs the headless browser the admin page's browser test drives (Debian's
# `chromium` and `chromium-driver`, through apt-get) when /usr/bin/chromium or
# /usr/bin/chromedriver is missing; quiet when both are there.
# Exit status: 0 when both are there afterwards, 1 otherwise.
set -u

[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "browser: not root and no sudo; install chromium and chromium-driver yourself" >&2
    exit 1
  fi
  sudo=(sudo)
fi

packages=(chromium chromium-driver)
install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
}

echo "browser: installing ${packages[*]}"
# A fresh machine may have no package lists yet: read them once, then try again.
if ! install >/dev/null 2>&1; then
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
  install >/dev/null 2>&1
fi

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "browser: chromium and chromedriver are installed"
else
  echo "browser: could not install ${packages[*]}" >&2
  exit 1
fi
