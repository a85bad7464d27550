#!/bin/sh
# keepalived notify script for a pair of lbs (deploy/OPERATIONS.md, "A pair of lbs").
# Install as /etc/keepalived/lb-notify.sh, root:root 0755: with enable_script_security,
# keepalived silently skips a script that anyone but root can change.
#
# keepalived runs it as root on every state change, as
#     lb-notify.sh VIP INSTANCE|GROUP NAME STATE PRIORITY
# (VIP comes from keepalived.conf, keepalived appends the rest). It
#   1. logs the transition (syslog tag keepalived-lb: journalctl -t keepalived-lb);
#   2. keeps VIP on lo while this node is not MASTER: Linux sends nothing from an address
#      that is no longer its own, so without it the responses lb is still writing on
#      connections accepted before the address moved would never leave; arp_ignore=1 and
#      arp_announce=2 keep this node from answering ARP for, or announcing, an address it
#      holds only on lo;
#   3. runs the hook /etc/keepalived/lb-notify-hook STATE VIP if it exists, e.g. to move a
#      cloud provider's floating IP to this VM on MASTER (OPERATIONS.md, "A pair of lbs").
set -u
PATH=$PATH:/usr/sbin:/usr/bin:/sbin:/bin

if [ $# -lt 4 ]; then
	echo "usage: $0 VIP INSTANCE|GROUP NAME STATE [PRIORITY]" >&2
	exit 2
fi
vip=$1 kind=$2 name=$3 state=$4 priority=${5:-}
hook=${LB_NOTIFY_HOOK:-/etc/keepalived/lb-notify-hook}

log() {
	logger -t keepalived-lb -p daemon.notice -- "$*"
}

log "$kind $name is $state (priority $priority), virtual IP $vip"

case $state in
MASTER)
	# keepalived has put the address on the interface: lo's copy must go.
	ip -4 addr del "$vip/32" dev lo 2>/dev/null
	;;
BACKUP | FAULT | STOP)
	if sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 >/dev/null; then
		if ! ip -4 addr show dev lo | grep -q " $vip/32 "; then
			ip -4 addr add "$vip/32" dev lo || log "could not add $vip/32 to lo"
		fi
	else
		log "could not set arp_ignore/arp_announce: $vip not kept on lo"
	fi
	;;
esac

if [ -e "$hook" ]; then
	# Run as root: only if root alone can change it, as keepalived demands of this script.
	if [ "$(stat -c '%u' "$hook")" != 0 ] || [ -n "$(find "$hook" -perm /022)" ]; then
		log "hook $hook skipped: it must be owned by root and writable by no one else"
	elif [ ! -x "$hook" ]; then
		log "hook $hook skipped: not executable"
	else
		"$hook" "$state" "$vip"
		status=$?
		[ "$status" = 0 ] || log "hook $hook $state $vip failed (status $status)"
	fi
fi
exit 0
