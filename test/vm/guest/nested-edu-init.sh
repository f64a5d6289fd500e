#!/bin/sh
# PID 1 of the inner guest of test/vm/vfio-user-nested.test.ts (busybox sh, from its initramfs):
# finds edu on the vfio-user-pci slot, computes a factorial through its BAR0 (/dev/mem: the guest's
# own loads and stores), binds uio_pci_generic, raises an interrupt through edu's 0x60 register and
# reads its count from /dev/uio0. Results go to the console as "INNER <key> <value>" lines.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "INNER $*"; }
finish() { say end; sync; poweroff -f; }

dev=
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor") $(cat "$d/device")" = "0x1234 0x11e8" ] && dev=$d
done
[ -n "$dev" ] || { say enumerated none; finish; }
say enumerated "${dev##*/}" "$(cat "$dev/class")"

# pci_enable_device: memory decode on, as a driver would.
echo 1 > "$dev/enable"
set -- $(head -n 1 "$dev/resource")
bar=$(($1))
reg() { devmem $((bar + $1)) 32 $2; }
say ident "$(reg 0x00)"
reg 0x08 5
i=0
while [ $(($(reg 0x20) & 1)) -ne 0 ] && [ $i -lt 1000 ]; do i=$((i + 1)); done
say factorial5 "$(reg 0x08)"

modprobe uio_pci_generic || say modprobe failed
echo "1234 11e8" > /sys/bus/pci/drivers/uio_pci_generic/new_id
driver=$(readlink "$dev/driver")
say driver "${driver##*/}"
[ -n "$driver" ] || say dmesg "$(dmesg | tail -n 8 | tr '\n' '|')"
if [ -e /dev/uio0 ]; then
  # Opened before the interrupt: a read of /dev/uio0 returns once the count moves past the one at open.
  exec 3< /dev/uio0
  reg 0x60 1
  say uio-count "$(timeout 60 dd bs=4 count=1 <&3 2> /dev/null | od -An -tu4 | tr -d ' ')"
  say interrupts "$(grep -c uio /proc/interrupts)" "$(grep uio /proc/interrupts | tr -s ' ')"
else
  say uio-count none
fi
finish
