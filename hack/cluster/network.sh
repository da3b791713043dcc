# shellcheck shell=bash
# The pods' network (sourced by hack/cluster.sh): the bridge kar0, the FORWARD rules that keep
# pod traffic on this machine, the CNI configuration; and their removal.

network() {
  mkdir -p "$S/run" "$S/cni/net.d" "$S/cni/ipam"
  # The CNI bridge plugin (isGateway) turns ip_forward on; `down` restores it.
  [[ -f $S/run/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$S/run/ip_forward.orig"
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pod traffic never leaves the machine: nothing from or to the pod range is forwarded through
  # any interface but the bridge.
  iptables -C FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
  iptables -C FORWARD -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP
  cat >"$S/cni/net.d/10-kar.conflist" <<J
{
  "cniVersion": "1.0.0",
  "name": "kar",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$S/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
J
}

# network_down: the bridge, the FORWARD rules that fence it, ip_forward as it was.
network_down() {
  iptables -D FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null || true
  iptables -D FORWARD -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null && log "deleted bridge $BRIDGE"
  if [[ -f $S/run/ip_forward.orig ]]; then
    cat "$S/run/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
    rm -f "$S/run/ip_forward.orig"
  fi
}
