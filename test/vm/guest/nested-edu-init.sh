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

# DMA through the IOMMU of the test guest, where xpci mapped this guest's RAM (DMA_MAP fds): 16
# bytes of one process's environment, RAM -> edu's buffer (0x40000) -> RAM over another's, read
# back through /proc. Physical addresses from /proc/PID/pagemap (PFNs are shown to root); the 16
# bytes are the first or the second 16 of the 33-byte environment, whichever stays in one page.
env_start() { cut -d ' ' -f 50 "/proc/$1/stat"; }
phys() {
  entry=$(dd if="/proc/$1/pagemap" bs=8 skip=$(($2 / 4096)) count=1 2> /dev/null | od -An -tx8 | tr -d ' ')
  echo $(((0x${entry#????????} << 12) + $2 % 4096))
}
dma() {
  reg 0x80 "$1"; reg 0x88 "$2"; reg 0x90 16; reg 0x98 "$3"
  i=0
  while [ $(($(reg 0x98) & 1)) -ne 0 ] && [ $i -lt 1000 ]; do i=$((i + 1)); done
}
cmd=$(od -An -tu2 -j 4 -N 2 "$dev/config" | tr -d ' ')
printf "$(printf '\\%03o\\%03o' $(((cmd | 4) & 255)) $(((cmd | 4) >> 8)))" | dd of="$dev/config" bs=2 seek=2 count=1 conv=notrunc 2> /dev/null
say bus-master $(($(od -An -tu2 -j 4 -N 2 "$dev/config") & 4))
env -i XPCI_DMA_SOURCE=0123456789abcdef sleep 600 &
src_pid=$!
env -i XPCI_DMA_TARGET=................ sleep 600 &
dst_pid=$!
sleep 1
from=$(env_start $src_pid)
to=$(env_start $dst_pid)
window=0
[ $((from % 4096)) -gt 4080 ] || [ $((to % 4096)) -gt 4080 ] && window=16
from=$(phys $src_pid $((from + window)))
to=$(phys $dst_pid $((to + window)))
say dma-window $window "$(printf '0x%x 0x%x' $from $to)"
dma $from 0x40000 1
dma 0x40000 $to 3
say dma-command "$(reg 0x98)"
say dma "$(tr '\0' '\n' < /proc/$dst_pid/environ | head -n 1)"

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
