#!/usr/bin/env bash
# Installs valgrind (Debian's package, through apt-get) when it is missing: the
# benchmark's `--instructions` mode counts instructions under its callgrind tool.
# Quiet when it is there. Exit status: 0 when valgrind is there afterwards, 1 otherwise.
set -u

command -v valgrind >/dev/null 2>&1 && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "valgrind: not root and no sudo; install valgrind yourself" >&2
    exit 1
  fi
  sudo=(sudo)
fi

install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
}

echo "valgrind: installing valgrind"
# A fresh machine may have no package lists yet: read them once, then try again.
if ! install >/dev/null 2>&1; then
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
  install >/dev/null 2>&1
fi

if command -v valgrind >/dev/null 2>&1; then
  echo "valgrind: installed"
else
  echo "valgrind: could not install valgrind" >&2
  exit 1
fi
