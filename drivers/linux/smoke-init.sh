#!/bin/sh
# /init of the Linux twins smoke initramfs (tests/drivers/test_linux_twins.py).
# Boots with busybox only; the scenario comes from the kernel command line
# (lab.scenario=NAME). Results go to the serial console as
#   @@LAB <key> <values...>           one result
#   @@BEGIN <name> ... @@END <name>   a block (journals, sysrq dumps)
# Every wait has a deadline. The guest has no network backend: all traffic is
# on lo, veth pairs and dummy devices inside the guest.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp && mount -t tmpfs tmp /tmp

say() { echo "@@LAB $*"; }
# busybox sh runs its own applets before PATH: use iproute2 (veth peers) explicitly
ip() { /usr/sbin/ip "$@"; }
scenario=$(sed -n 's/.*lab\.scenario=\([a-z0-9_-]*\).*/\1/p' /proc/cmdline)
PORT=7007

# wait_for SECONDS CMD... : poll CMD every 0.2 s until it succeeds; 1 on deadline
wait_for() {
    n=$(($1 * 5)); shift
    while [ "$n" -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; n=$((n - 1)); done
    return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
# wait_pid PID SECONDS : sets WAITED to "done <rc>" or "hung" (no subshell: wait
# only works on this shell's own children)
wait_pid() {
    if wait_for "$2" sh -c "! kill -0 $1"; then wait "$1"; WAITED="done $?"; else WAITED=hung; fi
}

load_base() {
    for m in failover net_failover virtio_ring virtio virtio_pci_legacy_dev \
             virtio_pci_modern_dev virtio_pci virtio_net veth; do
        insmod /modules/$m.ko || say base-module-failed $m
    done
    insmod /modules/dummy.ko numdummies=0 || say base-module-failed dummy
    ip link set lo up
    # QEMU test NICs (no host backend) show up as ethN once virtio_net is in
    wait_for 10 test -e /sys/class/net/eth1 || say nic-missing eth1
}

nic_of_mac() {  # ifname carrying MAC $1
    for d in /sys/class/net/*; do
        [ "$(cat $d/address)" = "$1" ] && { basename $d; return 0; }
    done
    return 1
}
adapter_of() { echo "$(cat /sys/class/net/$1/address)@$(cat /sys/class/net/$1/ifindex)"; }

make_links() {
    ip link add dummy0 type dummy
    ip link add veth0 type veth peer name veth1
    ip link add vetha type veth peer name vethb
    for i in dummy0 veth0 veth1 vetha vethb eth0 eth1; do ip link set $i up 2>/dev/null; done
    for i in dummy0 veth0 veth1 vetha vethb eth0 eth1; do
        [ -e /sys/class/net/$i ] && say nic $i $(adapter_of $i)
    done
}

bindings() {
    for f in /proc/labtdi/adapters/*; do
        [ -f "$f" ] && say binding $(sed -n 's/^name //p' $f) $(sed -n 's/^adapter //p' $f)
    done
}

# echo_check NAME BYTES [ADDR] : send random bytes through kecho, report hashes and diffs
echo_check() {
    head -c "$2" /dev/urandom >/tmp/$1.in
    timeout 30 nc "${3:-127.0.0.1}" $PORT </tmp/$1.in >/tmp/$1.out
    rc=$?
    say echo $1 rc=$rc sent=$(wc -c </tmp/$1.in) got=$(wc -c </tmp/$1.out) \
        in=$(sha256sum </tmp/$1.in | cut -c1-16) out=$(sha256sum </tmp/$1.out | cut -c1-16)
    cmp -l /tmp/$1.in /tmp/$1.out 2>/dev/null | head -32 | while read off a b; do
        say diff $1 $off $a $b
    done
}

probe() {  # probe LABEL IFNAME : one L2 echo out of IFNAME
    say l2 $1 $(l2probe $2 broadcast 1500 256)
}

probe_frame() {  # probe_frame LABEL IFNAME : send the host-built request (lab/l2probe.py)
    say l2raw $1 $(l2probe $2 --frame /lab/probe-frame.bin 1500)
}

journal() {  # the full journal, from the kernel log (includes module_exit)
    echo "@@BEGIN journal-$1"
    dmesg | grep 'labjournal: '
    echo "@@END journal-$1"
}

proc_journals() {
    for d in kecho labtdi; do
        echo "@@BEGIN proc-$d"; cat /proc/$d/journal; echo "@@END proc-$d"
    done
}

hold_connection() {  # opens one idle client connection to kecho; fd 3 keeps it open
    mkfifo /tmp/hold
    nc 127.0.0.1 $PORT </tmp/hold >/tmp/hold.out &
    HOLD_PID=$!
    exec 3>/tmp/hold
    echo ping >&3
    wait_for 10 grep -q ping /tmp/hold.out && say held-connection up || say held-connection down
}

scenario_main() {
    load_base
    insmod /lab/kecho.ko port=$PORT; say insmod kecho $?
    insmod /lab/labtdi.ko; say insmod labtdi $?
    make_links
    bindings

    echo_check single 65536
    echo_check v6 4096 ::1
    for i in 1 2 3 4 5 6; do echo_check conc$i 32768 & done
    wait

    for i in veth0 veth1 vetha vethb; do probe $i $i; done
    probe_frame veth0 veth0
    echo "unbind veth0" >/proc/labtdi/control; say control unbind-veth0 $?
    probe veth1-after-unbind veth1
    probe vetha-after-unbind vetha
    bindings
    echo "bind veth0" >/proc/labtdi/control; say control bind-veth0 $?
    probe veth1-after-rebind veth1
    echo "unbind nosuchnic" >/proc/labtdi/control 2>/dev/null; say control unbind-nosuchnic $?

    ip link del dummy0; say deleted dummy0 $?
    tnic=$(nic_of_mac 52:54:00:00:00:12)
    say unplug-request tnic1 $tnic
    if [ -n "$tnic" ] && wait_for 30 sh -c "! test -e /sys/class/net/$tnic"; then
        say unplugged $tnic ok
    else say unplugged $tnic timeout; fi
    bindings
    proc_journals

    hold_connection
    rmmod kecho 3>&- & RM=$!    # must not inherit the client's fifo writer
    sleep 3
    alive $RM && say rmmod-kecho-with-live-connection blocked || say rmmod-kecho-with-live-connection returned
    dmesg | grep -q 'unload waiting for 1 live' && say unload-waiting-message yes
    exec 3>&-          # the lab closes its client
    wait_pid $RM 20; say rmmod-kecho $WAITED
    wait_pid $HOLD_PID 10; say hold-client $WAITED
    rmmod labtdi; say rmmod labtdi $?
    say proc-after-unload $(ls -d /proc/kecho /proc/labtdi 2>/dev/null | wc -l)

    # reload works
    insmod /lab/kecho.ko port=$PORT; say reinsmod kecho $?
    insmod /lab/labtdi.ko; say reinsmod labtdi $?
    echo_check reload 16384
    probe veth1-after-reload veth1
    rmmod kecho; say rermmod kecho $?
    rmmod labtdi; say rermmod labtdi $?
    journal main
}

scenario_soft_faults() {  # corrupt byte + skip deregistration, then the consequence
    load_base
    insmod /lab/kecho.ko port=$PORT corrupt_every_kib=16 skip_deregister=1; say insmod kecho $?
    insmod /lab/labtdi.ko skip_deregister=1; say insmod labtdi $?
    ip link add dummy0 type dummy
    echo_check corrupt 65536
    rmmod kecho; say rmmod kecho $?
    rmmod labtdi; say rmmod labtdi $?
    journal soft
    # The forgotten unregister_netdevice_notifier: the next netdev event
    # calls into the unloaded module.
    echo 8 >/proc/sys/kernel/printk
    say consequence ip-link-add
    ip link add dummy9 type dummy
    say survived ip-link-add
}

scenario_skip_kecho() {  # kecho's forgotten unregister_pernet_subsys
    insmod /lab/kecho.ko port=$PORT skip_deregister=1; say insmod kecho $?
    rmmod kecho; say rmmod kecho $?
    journal skip-kecho
    echo 8 >/proc/sys/kernel/printk
    say consequence new-netns
    unshare -n true
    say survived new-netns
}

scenario_hangs() {  # block in unload (both) + leaked adapter reference
    load_base
    insmod /lab/kecho.ko port=$PORT block_unload=1; say insmod kecho $?
    insmod /lab/labtdi.ko block_unload=1 leak_ref_on_unregister=1; say insmod labtdi $?
    ip link add dummy0 type dummy; say nic dummy0 $(adapter_of dummy0)
    ip link del dummy0 & DEL=$!
    rmmod kecho & RK=$!
    rmmod labtdi & RL=$!
    wait_pid $RK 8; say rmmod-kecho $WAITED
    wait_pid $RL 1; say rmmod-labtdi $WAITED
    # netdev_wait_allrefs warns after 10 s of waiting
    if wait_for 30 sh -c "dmesg | grep -q 'unregister_netdevice: waiting for dummy0'"; then
        say leak-message yes
    else say leak-message no; fi
    wait_pid $DEL 1; say ip-link-del $WAITED
    # the dump is taken first and printed in one go: the kernel writes to the same
    # serial console and may land between an echo's text and its newline
    echo w >/proc/sysrq-trigger; sleep 1
    BLOCKED=$(dmesg | sed -n '/Show Blocked State/,$p' | head -120)
    printf '\n@@BEGIN blocked-tasks\n%s\n@@END blocked-tasks\n' "$BLOCKED"
    journal hangs
}

scenario_crash_unbind() {
    load_base
    echo 8 >/proc/sys/kernel/printk    # journal lines reach the console too
    insmod /lab/labtdi.ko crash_on_unbind=1; say insmod labtdi $?
    ip link add dummy0 type dummy; say nic dummy0 $(adapter_of dummy0)
    say crash-request unbind-dummy0
    echo "unbind dummy0" >/proc/labtdi/control
    say survived unbind-dummy0
}

say scenario $scenario
case "$scenario" in
    main) scenario_main ;;
    soft-faults) scenario_soft_faults ;;
    skip-kecho) scenario_skip_kecho ;;
    hangs) scenario_hangs ;;
    crash-unbind) scenario_crash_unbind ;;
    *) say unknown-scenario "$scenario" ;;
esac
say done
poweroff -f
