#!/bin/sh
# PID 1 of the xpci test guest (busybox sh, runs from the initramfs and never switch_roots).
#
# Builds /newroot = overlay(host / over read-only 9p, tmpfs upper) so the host's node, lspci and
# the repository are usable while nothing reaches the host, then serves the command agent on the
# virtio-serial port org.xpci.agent. Protocol (one line per message, base64 has no space or '-'):
#   host  -> guest: XPCI-EXEC <id> <timeout-seconds> <merge|split> <script-base64>
#                   XPCI-SHUTDOWN
#   guest -> host : XPCI-READY <kernel release>
#                   XPCI-BEGIN <id> / stdout base64 lines / XPCI-SEP <id> / stderr base64 lines /
#                   XPCI-END <id> <exited|timeout> <exit status>
# Anything fatal prints XPCI-FATAL on the console and powers off: the host sees QEMU exit.
/bin/busybox --install -s /bin
export PATH=/bin

fatal() {
  echo "XPCI-FATAL: $*" > /dev/console
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

param() { sed -n "s/.*xpci\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

modprobe -a virtio_pci 9pnet_virtio 9p overlay virtio_console || fatal "cannot load the harness modules"
mods=$(param mods | tr , ' ')
if [ -n "$mods" ]; then modprobe -a $mods || fatal "cannot load modules: $mods"; fi

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose root /lower || fatal "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fatal "cannot mount the overlay root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
# The host has no /lib/modules of this kernel: lend the initramfs' module tree and busybox's kmod.
mkdir -p $R/lib/modules $R/run/vmtools $R/run/xpci
mount --bind /lib/modules $R/lib/modules
cp /bin/busybox $R/run/vmtools/busybox
for tool in modprobe insmod rmmod lsmod depmod modinfo devmem; do ln -s busybox $R/run/vmtools/$tool; done

# Read-write shares appear at the same absolute path as on the host (cache=none: coherent).
for share in $(param shares | tr , ' '); do
  tag=${share%%:*}
  path=${share#*:}
  mkdir -p "$R$path" || fatal "cannot create mount point $path"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none "$tag" "$R$path" || fatal "cannot mount share $tag at $path"
done

# No udev in the guest: name the virtio-serial ports ourselves, in both /dev trees.
mkdir -p /dev/virtio-ports $R/dev/virtio-ports
for port in /sys/class/virtio-ports/*; do
  [ -e "$port/name" ] || continue
  name=$(cat "$port/name")
  [ -n "$name" ] || continue
  ln -sf "../${port##*/}" "/dev/virtio-ports/$name"
  ln -sf "../${port##*/}" "$R/dev/virtio-ports/$name"
done

hostname xpci-guest
AGENT=/dev/virtio-ports/org.xpci.agent
[ -e $AGENT ] || fatal "agent port missing"
exec 3<> $AGENT || fatal "cannot open the agent port"
mkdir -p /xpci
GUEST_PATH=/run/vmtools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Runs one script in the new root, in its own session so a timeout kills its whole process group.
# Processes the script leaves running in the background survive (and must redirect their output).
run() {
  id=$1 seconds=$2 mode=$3
  echo "$4" | base64 -d > $R/run/xpci/script || { echo "XPCI-END $id badscript 0" >&3; return; }
  rm -f /xpci/timedout
  : > /xpci/err
  if [ "$mode" = merge ]; then
    env -i PATH=$GUEST_PATH HOME=/root LANG=C.UTF-8 setsid chroot $R /bin/bash /run/xpci/script < /dev/null > /xpci/out 2>&1 3>&- &
  else
    env -i PATH=$GUEST_PATH HOME=/root LANG=C.UTF-8 setsid chroot $R /bin/bash /run/xpci/script < /dev/null > /xpci/out 2> /xpci/err 3>&- &
  fi
  pid=$!
  setsid sh -c "sleep $seconds; touch /xpci/timedout; kill -KILL -$pid" < /dev/null > /dev/null 2>&1 3>&- &
  watchdog=$!
  wait $pid
  rc=$?
  kill -KILL -$watchdog 2> /dev/null
  status=exited
  [ -e /xpci/timedout ] && status=timeout
  {
    echo "XPCI-BEGIN $id"
    base64 /xpci/out
    echo "XPCI-SEP $id"
    base64 /xpci/err
    echo "XPCI-END $id $status $rc"
  } >&3
}

echo "XPCI-READY $(uname -r)" >&3
# EOF on the port means the host side went away (test process died): power off rather than linger.
while read -r verb id seconds mode script <&3; do
  case "$verb" in
    XPCI-EXEC) run "$id" "$seconds" "$mode" "$script" ;;
    XPCI-SHUTDOWN) break ;;
  esac
done
exec 3>&-
sync
poweroff -f
