#!/usr/bin/env bash
# make demo: a two-node lab cluster running the seed's two services under
# orchestrate = ha; an image pushed to the registry through its floating
# address; the active node powered off through its BMC; the takeover on the
# peer, fenced first; the image pulled back and its digest checked; the old
# node powered on again and rejoining without taking the services back.
# Every step prints its elapsed time; the lab is torn down at the end, also
# on Ctrl-C or failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${VIGIL_BIN_DIR:-$here/../../bin}
LAB=${LAB:-demo}
HB_INTERVAL=${HB_INTERVAL:-0.2s}
HB_TIMEOUT=${HB_TIMEOUT:-1s}
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (namespaces, loop devices, docker)"; exit 1; }

. "$here/lib.sh"
T0=$(date +%s%N)
step() { printf '\n[%6ss] == %s\n' "$(since "$T0")" "$*"; }

cleanup() {
	local rc=$?
	step "tear-down: vigil-lab down"
	lab down >/dev/null 2>&1 || true
	[ -n "${probe_pid:-}" ] && kill "$probe_pid" 2>/dev/null || true
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "vigil-lab up --nodes 2 (heartbeats: network + disk, interval $HB_INTERVAL, timeout $HB_TIMEOUT; a BMC per node)"
lab down >/dev/null 2>&1 || true
lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT"
REG=$(lab_json "d['services']['registry.opensvc.com']")
CLIENT_NS=$(lab_json "d['client_netns']")

step "the seed's services start on n1, the first of their nodes (orchestrate = start)"
wait_for n1 "$(avail n1 registry.opensvc.com)" up 120 "registry up on n1"
wait_for n1 "$(avail n1 busybox.opensvc.com)" up 120 "busybox up on n1"

step "svcmgr -s registry.opensvc.com set orchestrate=ha (and busybox): validated, then synced to n2"
for s in registry.opensvc.com busybox.opensvc.com; do svcmgr_on n1 -s "$s" set orchestrate=ha; done
until grep -q "orchestrate = ha" "/run/vigil-lab/$LAB/nodes/n2/etc/busybox.opensvc.com.env" 2>/dev/null; do sleep 0.05; done
grep -H "orchestrate" /run/vigil-lab/"$LAB"/nodes/n2/etc/*.env

step "svcmon --cluster (on n1)"
svcmon_on n1 --cluster
step "registry.opensvc.com print status (on n1)"
svcmgr_on n1 -s registry.opensvc.com print status
step "busybox.opensvc.com docker ps (on n1: the service's private daemon)"
lab exec n1 -- "$BIN/svcmgr" -s busybox.opensvc.com docker ps

step "push an image to the registry through its floating address $REG:5000 (from the client namespace)"
DIGEST=$(ip netns exec "$CLIENT_NS" "$BIN/regclient" push "$REG:5000" demo/hello:1)
echo "pushed demo/hello:1 $DIGEST"

step "power n1 off through its BMC (ipmitool -I lanplus -C 3 chassis power off); a client probes $REG:5000 every 20 ms"
ip netns exec "$CLIENT_NS" "$BIN/regclient" probe "$REG:5000" --api >"/run/vigil-lab/$LAB/probe.out" 2>&1 &
probe_pid=$!
sleep 0.3
lab poweroff n1
# Timed from the BMC's answer that the power is off (ipmi_sim answers once
# the node is dead); the client's outage runs from its last good connection:
# until a TCP connection is accepted (docker-proxy may accept one before the
# registry runs) and until the registry answers GET /v2/.
OFF=$(date +%s%N)
N2LOG=/run/vigil-lab/$LAB/nodes/n2/vigild.log
until grep -q 'action done:.*service=registry.opensvc.com action=start' "$N2LOG" 2>/dev/null; do
	[ "$(since "$OFF" | cut -d. -f1)" -lt 120 ] || { echo "demo: no takeover within 120 s"; exit 1; }
	sleep 0.05
done
wait "$probe_pid" || true
probe_pid=""
client=$(awk '/^outage/ {print $2}' "/run/vigil-lab/$LAB/probe.out")
api=$(awk '/^api-outage/ {print $2}' "/run/vigil-lab/$LAB/probe.out")
lost=$(secs_after "$N2LOG" "$OFF" "peer lost")
fenced=$(secs_after "$N2LOG" "$OFF" "node fenced")
up=$(secs_after "$N2LOG" "$OFF" "action done:.*service=registry.opensvc.com action=start")
echo "n1 lost after ${lost}s; fenced (power-off confirmed by its BMC) after ${fenced}s; registry up on n2 after ${up}s; client outage ${client}s (TCP accepted), ${api}s (registry answers GET /v2/)"
grep -h -E "peer lost|node fenced|claiming|orchestrated start" "/run/vigil-lab/$LAB/nodes/n2/vigild.log" | tail -6 | cut -c1-160

step "the takeover on n2"
wait_for n2 "$(avail n2 busybox.opensvc.com)" up 120 "busybox up on n2"
svcmon_on n2 --cluster
svcmgr_on n2 -s registry.opensvc.com print status

step "pull demo/hello:1 back through the same address and check its digest"
GOT=$(ip netns exec "$CLIENT_NS" "$BIN/regclient" pull "$REG:5000" demo/hello:1 "$DIGEST")
echo "pulled $GOT: same digest, every blob checked"

step "power n1 on through its BMC: it rejoins and leaves the services on n2 (no failback)"
lab poweron n1
wait_for n2 "d['node']['n1']['state']" ready 60 "n1 to rejoin"
sleep 3
svcmon_on n1 --cluster
[ "$(view n1 "$(avail n2 registry.opensvc.com)")" = up ] && [ "$(view n1 "$(avail n1 registry.opensvc.com)")" = down ] ||
	{ echo "demo: the services moved back or were started twice"; exit 1; }
echo "n1 is back and ready; registry and busybox stay on n2 (giveback is an operator action: svcmgr -s NAME giveback)"

step "done"
echo "failover: lost=${lost}s fenced=${fenced}s up=${up}s client=${client}s api=${api}s (heartbeat interval $HB_INTERVAL, timeout $HB_TIMEOUT)"
