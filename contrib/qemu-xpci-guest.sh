#!/usr/bin/env bash
# Start a QEMU guest whose xpci frontend reaches an `xpci export` on this host through the
# virtio-serial port xpci.0 (docs/qemu.md). QEMU connects to the backend's socket as a client and
# reconnects every second, so either side may start first.
#
#   contrib/qemu-xpci-guest.sh [--socket PATH] [--port NAME] -- QEMU-ARGS...
#   e.g. contrib/qemu-xpci-guest.sh --socket /run/xpci/xpci.sock -- -m 1G -drive file=guest.qcow2,if=virtio
#
# Inside the guest: xpci lspci --connect /dev/virtio-ports/xpci.0
set -euo pipefail
socket=${XPCI_SOCKET:-/run/xpci/xpci.sock}
port=xpci.0
qemu=${QEMU:-qemu-system-x86_64}
while [ $# -gt 0 ]; do
  case $1 in
    --socket) socket=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "qemu-xpci-guest: unknown option '$1' (QEMU's own arguments go after --)" >&2; exit 2 ;;
  esac
done
accel=()
if [ -w /dev/kvm ]; then accel=(-accel kvm); fi
exec "$qemu" "${accel[@]}" \
  -chardev "socket,id=xpci0,path=$socket,server=off,reconnect=1" \
  -device virtio-serial-pci,id=xpciserial0 \
  -device "virtserialport,bus=xpciserial0.0,chardev=xpci0,name=$port" \
  "$@"
