#!/bin/sh
# keepalived notify script for a pair of lbs (deploy/OPERATIONS.md, "A pair of lbs").
# Install as /etc/keepalived/lb-notify.sh, root:root 0755: with enable_script_security,
# keepalived silently skips a script that anyone but root can change.
#
# keepalived runs it as root on every state change, as
#     lb-notify.sh VIP PEER IFACE INSTANCE|GROUP NAME STATE PRIORITY
# (VIP, PEER and IFACE come from keepalived.conf, keepalived appends the rest). It
#   1. logs the transition (syslog tag keepalived-lb: journalctl -t keepalived-lb);
#   2. keeps VIP on lo while this node is not MASTER: Linux sends nothing from an address
#      that is no longer its own, so without it the responses lb is still writing on
#      connections accepted before the address moved would never leave; arp_ignore=1 and
#      arp_announce=2 keep this node from answering ARP for, or announcing, an address it
#      holds only on lo;
#   3. hands the peer's connections back to it: a TCP connection cannot follow
#      the address, so the packets of connections the peer accepted before the move reach
#      this node, which would reset them. An nftables rule (table ip lb_handover) sends
#      each packet to VIP that is not a SYN and finds no connected socket here (only a
#      wildcard listener) on to the peer, unchanged but for its Ethernet header, where the
#      peer's lb (VIP on its lo) still owns the connection: a planned stop or upgrade then
#      cuts no connection. Packets that came from the peer are never sent back (no loop
#      when both are MASTER). If the peer's host does not answer (crashed), the rule goes
#      again, so clients of the dead peer meet resets rather than silence. BACKUP and
#      FAULT install it too (it must be in place before the address arrives); STOP
#      removes it;
#   4. runs the hook /etc/keepalived/lb-notify-hook STATE VIP if it exists, e.g. to move a
#      cloud provider's floating IP to this VM on MASTER (OPERATIONS.md, "A pair of lbs").
set -u
PATH=$PATH:/usr/sbin:/usr/bin:/sbin:/bin

if [ $# -lt 6 ]; then
	echo "usage: $0 VIP PEER IFACE INSTANCE|GROUP NAME STATE [PRIORITY]" >&2
	exit 2
fi
vip=$1 peer=$2 iface=$3 kind=$4 name=$5 state=$6 priority=${7:-}
hook=${LB_NOTIFY_HOOK:-/etc/keepalived/lb-notify-hook}

log() {
	logger -t keepalived-lb -p daemon.notice -- "$*"
}

log "$kind $name is $state (priority $priority), virtual IP $vip"

# handover installs the rule of step 3. Every state but STOP has it, so that it is in
# place before this node takes the address: packets of the peer's connections start
# arriving the moment it does.
handover() {
	# A TCP connection to the peer's host resolves its MAC; accepted or refused, the host
	# is alive; a crashed one is silent. keepalived runs notify scripts concurrently, so a
	# MASTER run whose probe timed out while a partition healed may end after the BACKUP
	# run that followed it: only a node still holding the address removes the rule.
	timeout 0.5 bash -c "exec 3<>/dev/tcp/$peer/443" 2>/dev/null
	if [ $? = 124 ]; then
		if [ "$state" = MASTER ] && ip -4 addr show dev "$iface" | grep -q " $vip/"; then
			nft delete table ip lb_handover 2>/dev/null
			log "peer $peer does not answer: its connections are not handed back"
		fi
		return
	fi
	mac=$(ip -4 neigh show "$peer" dev "$iface" | sed -n 's/.* lladdr \([0-9a-fA-F:]*\).*/\1/p')
	if [ -z "$mac" ]; then
		log "peer $peer has no known MAC on $iface: its connections are not handed back"
		return
	fi
	nft -f - <<RULES || log "could not install the handover of $peer's connections"
table ip lb_handover
delete table ip lb_handover
table ip lb_handover {
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip daddr $vip tcp flags & syn == 0 ether saddr != $mac socket wildcard 1 dup to $peer device "$iface" drop
	}
}
RULES
}

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

case $state in
MASTER | BACKUP | FAULT) handover ;;
*) nft delete table ip lb_handover 2>/dev/null ;;
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
