#!/usr/bin/env bash
# make bench-startup RUNS=N: wall time to start the seed-shaped busybox
# service with svcmgr versus a shell script doing the same steps one after
# the other (vgchange, mount x2, ip addr add, dockerd, docker run x7).
# Prints the figures; asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VIGIL_BIN_DIR=${VIGIL_BIN_DIR:-$here/../bin}
RUNS=${RUNS:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench-startup: needs root"; exit 1; }
. "$here/../e2e/single-node/lib.sh"
trap sn_teardown EXIT
sn_setup >/dev/null
svcmgr() { "$VIGIL_BIN_DIR/svcmgr" "$@"; }

S=$SN_BASE/script
script_start() {
	mkdir -p "$S"
	vgchange -q --addtag "$(hostname)" "$SN_VG" >/dev/null
	vgchange -q -ay "$SN_VG" >/dev/null
	ip addr add "$SN_ADDR/24" dev "$SN_VETH"
	mount -o rw "$SN_ROOTDEV" "$SN_MNT"
	mount -o rw "$SN_DATADEV" "$SN_APPDATA"
	setsid dockerd --data-root "$SN_APPDATA" --exec-root "$S/exec" --pidfile "$S/docker.pid" \
		-H "unix://$S/docker.sock" --bridge="$SN_BRIDGE" --iptables=false \
		--containerd-namespace "vigil-script-$SN_ID" >"$S/dockerd.log" 2>&1 &
	until docker -H "unix://$S/docker.sock" version >/dev/null 2>&1; do sleep 0.02; done
	for i in 1 2 3 4 5 6 7; do docker -H "unix://$S/docker.sock" run -d --name "script.container.$i" "$SN_TAG" >/dev/null; done
}
script_stop() {
	for i in 7 6 5 4 3 2 1; do docker -H "unix://$S/docker.sock" rm -f "script.container.$i" >/dev/null; done
	local pid; pid=$(cat "$S/docker.pid"); kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	umount "$SN_APPDATA"; umount "$SN_MNT"
	ip addr del "$SN_ADDR/24" dev "$SN_VETH"
	vgchange -q -an "$SN_VG" >/dev/null; vgchange -q --deltag "$(hostname)" "$SN_VG" >/dev/null
}

vt=() st=()
for r in $(seq "$RUNS"); do
	t=$(date +%s%N); svcmgr -s "$SN_SVC" start >/dev/null; vt+=("$(sn_since "$t")")
	svcmgr -s "$SN_SVC" stop >/dev/null
	t=$(date +%s%N); script_start; st+=("$(sn_since "$t")")
	script_stop
	echo "run $r: svcmgr start ${vt[-1]} s, script ${st[-1]} s"
done
printf '%s\n' "${vt[@]}" | sort -n | awk '{a[NR]=$1} END {printf "svcmgr start: median %.3f s (min %.3f, max %.3f, %d runs)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
printf '%s\n' "${st[@]}" | sort -n | awk '{a[NR]=$1} END {printf "shell script: median %.3f s (min %.3f, max %.3f, %d runs)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
