#!/usr/bin/env bash
# Host packages xpci needs beyond Node 20 + npm: pciutils/pci.ids (lspci/setpci, names, the
# reference the tests compare against) and qemu-system-x86 (the throwaway test guest).
# Idempotent; installs only what is missing. Needs root (apt-get) only when something is missing.
set -euo pipefail
packages=(pciutils pci.ids qemu-system-x86 python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup-host: missing ${missing[*]}: run this script as root once" >&2; exit 1; fi
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The test guest's kernel and busybox are fetched with `apt-get download`, which needs package lists.
# Only root can fetch them; xpci itself (and `xpci demo`) runs without.
if [ "$(id -u)" -eq 0 ] && [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then apt-get update -q; fi
