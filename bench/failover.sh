#!/usr/bin/env bash
# make bench-failover RUNS=N: in a two-node lab running the seed's services
# under orchestrate = ha, N power-offs of the active node through its BMC,
# each timed from the BMC's confirmation that the power is off to (a) the
# peer marking the node lost, (b) the fence confirmed, (c) the registry up
# on the peer, and (d) the client's first successful TCP connection to the
# registry through its floating address, probed every 20 ms from the
# client namespace (measured from the client's last good connection), and
# (e) the registry's first answer to GET /v2/ (a docker-proxy restored by the
# private dockerd may accept TCP connections before the registry runs).
# Prints min/median/max of each; the last line sums it up. Asserts nothing.
# PROFILE=ip times a service holding only a floating address instead, with
# heartbeats at 0.1 s / 0.3 s and no fencing (what keepalived users compare);
# ARP_PROBE=0 sets the address's arp_probe (keepalived does not probe).
# PROFILE=ocf times a service of an address, an ext4 filesystem on a shared
# disk and nginx run by Pacemaker's heartbeat:nginx agent (plugins/app,
# type = ocf) from a configuration on that filesystem, fenced first like
# the seed; "api" is then nginx's first answer with the file it serves
# from the shared filesystem.
# PROFILE=process times the shape of a Pacemaker measurement: an address
# and one process, busybox httpd run by the app plugin (type = simple),
# fenced first and heartbeats as the seed's; "client" is httpd's first TCP
# accept, "api" its first answer to an HTTP GET.
# TRACE=DIR keeps each run's node logs and probe output in DIR/run-N/ with
# the times the power-off was asked and confirmed, for a breakdown of where
# the time went; TRACE_CMD, when set, runs in the client namespace during
# each run with the floating address and an output file as arguments (a
# packet capture, say).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${VIGIL_BIN_DIR:-$here/../bin}
LAB=${LAB:-bench}
RUNS=${RUNS:-10}
HB_INTERVAL=${HB_INTERVAL:-0.2s}
HB_TIMEOUT=${HB_TIMEOUT:-1s}
[ "$(id -u)" -eq 0 ] || { echo "bench-failover: needs root"; exit 1; }
. "$here/../e2e/lab/lib.sh"
keep_logs() {
	local rc=$?
	if [ $rc -ne 0 ] && [ -d "/run/vigil-lab/$LAB/nodes" ]; then
		local dst=/tmp/vigil-bench-failover-$PROFILE-logs
		rm -rf "$dst"; mkdir -p "$dst"
		for n in /run/vigil-lab/"$LAB"/nodes/*; do cp "$n/vigild.log" "$dst/$(basename "$n").log" 2>/dev/null || true; done
		echo "bench-failover: failed; the nodes' logs are in $dst"
	fi
	lab down >/dev/null 2>&1 || true
	exit $rc
}
trap keep_logs EXIT
trap 'exit 130' INT TERM

PROFILE=${PROFILE:-seed}
lab down >/dev/null 2>&1 || true
if [ "$PROFILE" = ip ]; then
	# What keepalived users compare with: a service holding only a
	# floating address, the client's TCP server already listening on
	# every node, heartbeats at 0.1 s / 0.3 s, no fencing.
	HB_INTERVAL=0.1s HB_TIMEOUT=0.3s
	lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT" --services=false --images=false >/dev/null
	SVC=vip PORT=7000 API=
	ADDR=$(lab_json "d['subnet']").60
	for n in n1 n2; do lab exec "$n" -- "$BIN/regclient" listen ":$PORT" >/dev/null 2>&1 & done
	{
		printf '[DEFAULT]\nnodes = n1 n2\norchestrate = ha\nstonith = false\n\n[ip#1]\nipdev = eth0\nipname = %s\nnetmask = 24\n' "$ADDR"
		[ -z "${ARP_PROBE:-}" ] || printf 'arp_probe = %s\n' "$ARP_PROBE"
	} >"/run/vigil-lab/$LAB/nodes/n1/etc/$SVC.conf"
	wait_for n1 "$(avail n1 $SVC)" up 60 "$SVC up on n1"
	until [ -f "/run/vigil-lab/$LAB/nodes/n2/etc/$SVC.conf" ]; do sleep 0.05; done
elif [ "$PROFILE" = ocf ]; then
	for p in /usr/lib/ocf/resource.d/heartbeat/nginx /usr/sbin/nginx; do
		[ -e "$p" ] || { echo "bench-failover: PROFILE=ocf needs $p (make deps)"; exit 1; }
	done
	lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT" --services=false --images=false >/dev/null
	SVC=web PORT=8080 API=--api
	ADDR=$(lab_json "d['subnet']").61
	DEV=$(lab_json "[x['dev'] for x in d['disks'] if x['role'] == 'registry-data'][0]")
	MNT=/run/vigil-lab/$LAB/web # removed with the lab
	# nginx's configuration and the file it serves live on the shared
	# disk; what nginx writes goes to the node's own /run/vigil. The disk
	# is filled here, on the host, before any node runs the service.
	fill=$(mktemp -d)
	mount "$DEV" "$fill"
	mkdir -p "$fill/www/v2"
	echo "served from the shared disk" | tee "$fill/www/index.html" >"$fill/www/v2/index.html"
	sed "s|@PORT@|$PORT|; s|@MNT@|$MNT|" >"$fill/nginx.conf" <<'NGINX'
user root;
worker_processes 1;
pid /run/vigil/nginx-web.pid;
error_log /run/vigil/nginx-web.error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path /run/vigil/nginx-web.body;
	proxy_temp_path /run/vigil/nginx-web.proxy;
	fastcgi_temp_path /run/vigil/nginx-web.fastcgi;
	uwsgi_temp_path /run/vigil/nginx-web.uwsgi;
	scgi_temp_path /run/vigil/nginx-web.scgi;
	server { listen @PORT@; root @MNT@/www; }
}
NGINX
	umount "$fill" && rmdir "$fill"
	printf '[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n\n[ip#1]\nipdev = eth0\nipname = %s\nnetmask = 24\n\n[fs#1]\ndev = %s\nmnt = %s\ntype = ext4\n\n[app#1]\ntype = ocf\nagent = heartbeat:nginx\nparams = configfile=%s/nginx.conf\nmonitor = true\n' \
		"$ADDR" "$DEV" "$MNT" "$MNT" >"/run/vigil-lab/$LAB/nodes/n1/etc/$SVC.conf"
	wait_for n1 "$(avail n1 $SVC)" up 120 "$SVC up on n1"
	until [ -f "/run/vigil-lab/$LAB/nodes/n2/etc/$SVC.conf" ]; do sleep 0.05; done
elif [ "$PROFILE" = process ]; then
	[ -x /bin/busybox ] || { echo "bench-failover: PROFILE=process needs /bin/busybox (busybox-static)"; exit 1; }
	lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT" --services=false --images=false >/dev/null
	SVC=httpd PORT=8081 API=--api
	ADDR=$(lab_json "d['subnet']").62
	# What httpd serves, on the host's /run (every node sees it), removed
	# with the lab; /v2/ answers 200 for regclient's --api.
	WWW=/run/vigil-lab/$LAB/www
	mkdir -p "$WWW/v2"
	echo "served by busybox httpd" | tee "$WWW/index.html" >"$WWW/v2/index.html"
	printf '[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n\n[ip#1]\nipdev = eth0\nipname = %s\nnetmask = 24\n\n[app#1]\ntype = simple\nstart = /bin/busybox httpd -f -p %s -h %s\nmonitor = true\n' \
		"$ADDR" "$PORT" "$WWW" >"/run/vigil-lab/$LAB/nodes/n1/etc/$SVC.conf"
	wait_for n1 "$(avail n1 $SVC)" up 60 "$SVC up on n1"
	until [ -f "/run/vigil-lab/$LAB/nodes/n2/etc/$SVC.conf" ]; do sleep 0.05; done
else
	lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT" >/dev/null
	SVC=registry.opensvc.com PORT=5000 API=--api
	ADDR=$(lab_json "d['services']['registry.opensvc.com']")
	for s in registry.opensvc.com busybox.opensvc.com; do wait_for n1 "$(avail n1 "$s")" up 180 "$s up on n1"; done
	for s in registry.opensvc.com busybox.opensvc.com; do svcmgr_on n1 -s "$s" set orchestrate=ha; done
	# The registry first on a takeover (priority, 0 the highest; default
	# 50): busybox's seven containers start once it is up. PRIORITY=50
	# times both starting together.
	svcmgr_on n1 -s registry.opensvc.com set priority="${PRIORITY:-10}"
	until grep -q "^priority = " "/run/vigil-lab/$LAB/nodes/n2/etc/registry.opensvc.com.env" 2>/dev/null; do sleep 0.05; done
	until grep -q "orchestrate = ha" "/run/vigil-lab/$LAB/nodes/n2/etc/busybox.opensvc.com.env" 2>/dev/null; do sleep 0.05; done
fi
CLIENT_NS=$(lab_json "d['client_netns']")

active=n1 peer=n2
L=() F=() U=() C=() A=()
for r in $(seq "$RUNS"); do
	ip netns exec "$CLIENT_NS" "$BIN/regclient" probe "$ADDR:$PORT" $API >"/run/vigil-lab/$LAB/probe.out" 2>&1 &
	probe=$!
	if [ -n "${TRACE:-}" ] && [ -n "${TRACE_CMD:-}" ]; then
		mkdir -p "$TRACE/run-$r"
		ip netns exec "$CLIENT_NS" $TRACE_CMD "$ADDR" "$TRACE/run-$r/client.trace" &
		tracer=$!
	fi
	sleep 0.3
	# vigil-lab asks the BMC again itself when an answer is lost; the
	# node is only off once the BMC says so.
	ASKED=$(date +%s%N)
	lab poweroff "$active" >/dev/null
	OFF=$(date +%s%N)
	log=$(log_of "$peer")
	until [ "$(secs_after "$log" "$OFF" "action done:.*service=$SVC action=start")" != "?" ]; do
		[ "$(since "$OFF" | cut -d. -f1)" -lt 120 ] || { echo "run $r: no takeover within 120 s"; exit 1; }
		sleep 0.05
	done
	wait "$probe" || true
	if [ -n "${TRACE:-}" ]; then
		mkdir -p "$TRACE/run-$r"
		[ -z "${tracer:-}" ] || { kill "$tracer" 2>/dev/null; wait "$tracer" 2>/dev/null || true; tracer=; }
		cp "/run/vigil-lab/$LAB/probe.out" "$TRACE/run-$r/"
		for n in n1 n2; do cp "$(log_of $n)" "$TRACE/run-$r/$n.log"; done
		echo "asked=$ASKED off=$OFF active=$active peer=$peer" >"$TRACE/run-$r/times"
	fi
	L+=("$(secs_after "$log" "$OFF" "peer lost")")
	F+=("$(secs_after "$log" "$OFF" "node fenced")")
	U+=("$(secs_after "$log" "$OFF" "action done:.*service=$SVC action=start")")
	C+=("$(awk '/^outage/ {print $2}' "/run/vigil-lab/$LAB/probe.out")")
	A+=("$(awk '/^api-outage/ {print $2}' "/run/vigil-lab/$LAB/probe.out")")
	echo "run $r ($active off): lost ${L[-1]}s fenced ${F[-1]}s up ${U[-1]}s client ${C[-1]}s${API:+ api ${A[-1]}s}"
	# Bring the old node back; the services stay on the peer (no
	# failback), which becomes the active node of the next run.
	[ "$PROFILE" != seed ] || wait_for "$peer" "$(avail "$peer" busybox.opensvc.com)" up 120 "busybox up on $peer"
	lab poweron "$active" >/dev/null
	[ "$PROFILE" != ip ] || { lab exec "$active" -- "$BIN/regclient" listen ":$PORT" >/dev/null 2>&1 & }
	wait_for "$peer" "d['node']['$active']['state']" ready 60 "$active to rejoin"
	tmp=$active active=$peer peer=$tmp
done

stats() { # name values...
	local name=$1; shift
	printf '%s\n' "$@" | grep -v '^?*$' | sort -n | awk -v n="$name" '{a[NR]=$1} END {
		if (NR == 0) { printf "%-7s no data\n", n; exit }
		printf "%-7s min %.2fs  median %.2fs  max %.2fs\n", n, a[1], a[int((NR+1)/2)], a[NR] }'
}
median() { printf '%s\n' "$@" | grep -v '^?*$' | sort -n | awk '{a[NR]=$1} END { if (NR) printf "%.2f", a[int((NR+1)/2)]; else printf "?" }'; }
if [ "$PROFILE" = ip ]; then
	probe_default=$(sed -n 's/.*DefaultARPProbe *= *\([0-9]*\) \* time.Millisecond.*/\1ms/p' "$here/../plugins/ip/ip.go")
	echo "heartbeats: network + disk, interval $HB_INTERVAL, timeout $HB_TIMEOUT; fencing: off; service: one floating address, arp_probe ${ARP_PROBE:-${probe_default:-?} (default)}"
	stats lost "${L[@]}"; stats up "${U[@]}"; stats client "${C[@]}"
	echo "failover-ip: runs=$RUNS lost_median=$(median "${L[@]}")s client_median=$(median "${C[@]}")s"
elif [ "$PROFILE" = process ]; then
	echo "heartbeats: network + disk, interval $HB_INTERVAL, timeout $HB_TIMEOUT; fencing: stonith-ipmi (ipmi_sim, lanplus, cipher 3); service: ip, busybox httpd (app, type = simple)"
	stats lost "${L[@]}"; stats fenced "${F[@]}"; stats up "${U[@]}"; stats client "${C[@]}"; stats api "${A[@]}"
	echo "(client: httpd's first TCP accept; api: its first answer to GET /v2/; up: the start done, after the simple app's 300 ms settle)"
	echo "failover-process: runs=$RUNS lost_median=$(median "${L[@]}")s fenced_median=$(median "${F[@]}")s up_median=$(median "${U[@]}")s client_median=$(median "${C[@]}")s api_median=$(median "${A[@]}")s"
elif [ "$PROFILE" = ocf ]; then
	echo "heartbeats: network + disk, interval $HB_INTERVAL, timeout $HB_TIMEOUT; fencing: stonith-ipmi; service: ip, ext4 on a shared disk, nginx by heartbeat:nginx"
	stats lost "${L[@]}"; stats fenced "${F[@]}"; stats up "${U[@]}"; stats client "${C[@]}"; stats api "${A[@]}"
	echo "(client: first TCP connection accepted; api: nginx's first answer with the file from the shared filesystem)"
	echo "failover-ocf: runs=$RUNS lost_median=$(median "${L[@]}")s fenced_median=$(median "${F[@]}")s up_median=$(median "${U[@]}")s client_median=$(median "${C[@]}")s api_median=$(median "${A[@]}")s"
else
	echo "heartbeats: network + disk, interval $HB_INTERVAL, timeout $HB_TIMEOUT; fencing: stonith-ipmi (ipmi_sim, lanplus, cipher 3)"
	stats lost "${L[@]}"; stats fenced "${F[@]}"; stats up "${U[@]}"; stats client "${C[@]}"; stats api "${A[@]}"
	echo "(client: first TCP connection accepted, possibly by a docker-proxy before the registry runs; api: first answer of the registry to GET /v2/)"
	echo "failover: runs=$RUNS lost_median=$(median "${L[@]}")s fenced_median=$(median "${F[@]}")s up_median=$(median "${U[@]}")s client_median=$(median "${C[@]}")s api_median=$(median "${A[@]}")s"
fi
