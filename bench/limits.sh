#!/usr/bin/env bash
# make bench-limits RUNS=N: the floor of each phase of a takeover, each
# measured alone on this host with the real component, N times (5 by
# default), printed as a markdown table (min / median / max, ms):
#   * the fence round trip: the real stonith-ipmi plugin, called as vigild
#     calls it, against OpenIPMI's ipmi_sim on 127.0.0.1 (power status,
#     power off, the confirmation that it is off); ipmitool -I lanplus -C 3
#     doing the same in three runs as a reference;
#   * an ARP request and its reply between two network namespaces on a
#     veth pair, beside the ip plugin's arp_probe, a configured wait;
#   * vgchange -ay and -an of a VG on a loop device (no LV: this host has
#     no device-mapper), and one vgs, what every LVM command costs;
#   * mount of an ext4 on a loop device;
#   * a private dockerd (own data root, exec root, socket, containerd
#     namespace; in network, pid and mount namespaces of its own) started
#     until it answers /_ping: on a fresh data root, and on a data root
#     left by a dockerd killed with its containers (SIGKILL of its pid
#     namespace, as a power-off);
#   * the lab's registry image (Debian's docker-registry, imported as
#     e2e/lab/images.go does) created and started over the docker API
#     with the lab's run_args, until the start returns (the container
#     runs), then the registry's first answer to GET /v2/ on its
#     published port.
# Everything it creates has a unique name and is removed on exit; it stops
# only the processes it started, by pid. Asserts nothing. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${VIGIL_BIN_DIR:-$here/../bin}
RUNS=${RUNS:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench-limits: needs root"; exit 1; }
for t in ipmi_sim ipmitool lvm losetup mkfs.ext4 dockerd docker docker-registry busybox curl unshare ip python3; do
	command -v "$t" >/dev/null || { echo "bench-limits: needs $t (make deps)"; exit 1; }
done
for b in limitsprobe vigil-plugin-stonith-ipmi; do
	[ -x "$BIN/$b" ] || { echo "bench-limits: no $BIN/$b (make build, go build -o $BIN/ ./bench/limitsprobe)"; exit 1; }
done
export LVM_SUPPRESS_FD_WARNINGS=1

ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/vigil-limits.XXXXXX)
PIDS=() LOOPS=() NETNS=() MOUNTS=() VG= CGROUP=/sys/fs/cgroup/vigil-limits-$ID
LVMCONF=
cleanup() {
	local rc=$?
	set +e
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mountpoint -q "${MOUNTS[i]}" && umount "${MOUNTS[i]}"
	done
	if [ -n "$VG" ]; then
		lvm vgchange -q -an --config "$LVMCONF" "$VG" >/dev/null 2>&1
		lvm vgremove -q -f --config "$LVMCONF" "$VG" >/dev/null 2>&1
	fi
	for d in "${LOOPS[@]}"; do
		[ -z "$VG" ] || lvm pvremove -q -ff -y --config "$LVMCONF" "$d" >/dev/null 2>&1
		losetup -d "$d"
	done
	for n in "${NETNS[@]}"; do ip netns del "$n"; done
	# The killed daemons' containers leave their cgroups behind.
	if [ -d "$CGROUP" ]; then
		for try in $(seq 50); do
			find "$CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$CGROUP" ] || break
			sleep 0.1
		done
		[ ! -d "$CGROUP" ] || echo "bench-limits: $CGROUP left behind" >&2
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
say() { echo "bench-limits: $*" >&2; }
ROWS=()
# row PHASE NOTE SECONDS...: one table row of min/median/max in ms.
row() {
	local phase=$1 note=$2
	shift 2
	ROWS+=("$(printf '%s\n' "$@" | sort -g | awk -v p="$phase" -v n="$note" '
		{ v[NR] = $1 * 1000 }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "| %s | %.1f | %.1f | %.1f | %d | %s |", p, v[1], m, v[NR], NR, n }')")
}
# secs T0 [T1]: seconds between two `now`s (T1 default: now).
secs() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.6f", (b - a) / 1e9 }'; }
# loopdev FILE SIZE: a loop device over a new file, in LOOP (not echoed:
# LOOPS must be set in this shell, for the cleanup).
loopdev() {
	truncate -s "$2" "$1"
	LOOP=$(losetup --find --show "$1")
	LOOPS+=("$LOOP")
}
rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# --- fence round trip -------------------------------------------------
say "fence round trip (ipmi_sim)"
bmc=$WORK/bmc
mkdir -p "$bmc/state"
pw=$(rnd 8)
printf '%s\n' "$pw" >"$bmc/pass" && chmod 600 "$bmc/pass"
echo 1 >"$bmc/power"
# ipmi_sim's chassis_control program: `get power` and `set power 0|1`,
# the power a file (as plugins/stonith-ipmi/ipmisim does).
cat >"$bmc/chassis.sh" <<EOF
#!/bin/sh
state=$bmc/power
case "\$1" in
set) shift; while [ \$# -ge 2 ]; do [ "\$1" = power ] && printf '%s\n' "\$2" >"\$state"; shift 2; done ;;
get) shift; for item; do [ "\$item" = power ] && printf 'power:%s\n' "\$(cat "\$state")"; done ;;
esac
exit 0
EOF
chmod 755 "$bmc/chassis.sh"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$bmc/lan.conf" <<EOF
name "vigil-limits-$ID"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $port
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid $(rnd 16)
  endlan
  chassis_control "$bmc/chassis.sh"
  user 2 true "admin" "$pw" admin 10 none md2 md5 straight
EOF
printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n' >"$bmc/bmc.emu"
(cd "$bmc" && exec ipmi_sim -c lan.conf -f bmc.emu -s state -n >ipmi_sim.log 2>&1) &
PIDS+=($!)
hexport=$(printf '0100007F:%04X' "$port")
for try in $(seq 250); do
	grep -q " $hexport " /proc/net/udp && break
	[ "$try" -lt 250 ] || { say "ipmi_sim does not listen: $(cat "$bmc/ipmi_sim.log")"; exit 1; }
	sleep 0.02
done
mkdir -m 700 "$WORK/plugins"
ln -s "$(readlink -f "$BIN/vigil-plugin-stonith-ipmi")" "$WORK/plugins/vigil-plugin-stonith-ipmi"
mapfile -t v < <("$BIN/limitsprobe" fence -plugin-dir "$WORK/plugins" -host 127.0.0.1 -port "$port" -user admin \
	-password-file "$bmc/pass" -power-file "$bmc/power" -n "$RUNS")
row "fence: stonith-ipmi (status, off, confirmed)" "the real plugin through its gRPC boundary, one lanplus session" "${v[@]}"
ipmi() { ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$port" -U admin -f "$bmc/pass" chassis power "$1"; }
v=()
for i in $(seq "$RUNS"); do
	echo 1 >"$bmc/power"
	t0=$(now)
	ipmi status >/dev/null
	ipmi off >/dev/null
	until ipmi status | grep -q off; do :; done
	v+=("$(secs "$t0")")
done
row "fence: ipmitool -I lanplus -C 3 (status, off, status)" "reference: three ipmitool runs, a session each" "${v[@]}"

# --- ARP --------------------------------------------------------------
say "ARP request/reply"
na=vlim-a-$ID nb=vlim-b-$ID
ip netns add "$na" && NETNS+=("$na")
ip netns add "$nb" && NETNS+=("$nb")
ip link add "vla$ID" type veth peer name "vlb$ID"
ip link set "vla$ID" netns "$na"
ip link set "vlb$ID" netns "$nb"
ip -n "$na" addr add 192.0.2.1/24 dev "vla$ID"
ip -n "$nb" addr add 192.0.2.2/24 dev "vlb$ID"
for n in "$na" "$nb"; do ip -n "$n" link set lo up; done
ip -n "$na" link set "vla$ID" up
ip -n "$nb" link set "vlb$ID" up
mapfile -t v < <(ip netns exec "$na" "$BIN/limitsprobe" arp -i "vla$ID" -target 192.0.2.2 -n "$RUNS")
row "ARP request → reply (two namespaces, veth)" "raw frame out, the reply's frame in" "${v[@]}"
probe_ms=$(sed -n 's/.*DefaultARPProbe *= *\([0-9]*\) \* time.Millisecond.*/\1/p' "$here/../plugins/ip/ip.go")
if [ -n "$probe_ms" ]; then
	ROWS+=("| ip: arp_probe (default) | $probe_ms | $probe_ms | $probe_ms | - | a configured wait for a holder's answer, not a measurement |")
fi

# --- LVM --------------------------------------------------------------
say "vgchange"
loopdev "$WORK/pv.img" 16M && pv=$LOOP
filter="[\"a|^$pv\$|\",\"r|.*|\"]"
LVMCONF="devices { filter=$filter global_filter=$filter use_devicesfile=0 } backup { backup=0 archive=0 }"
lvm pvcreate -q --config "$LVMCONF" "$pv" >/dev/null
lvm vgcreate -q --config "$LVMCONF" "vglimits$ID" "$pv" >/dev/null 2>&1 || { say "vgcreate on $pv failed"; exit 1; }
VG=vglimits$ID
up=() down=() vgs=()
for i in $(seq "$RUNS"); do
	t0=$(now); lvm vgchange -q -ay --config "$LVMCONF" "$VG" >/dev/null; up+=("$(secs "$t0")")
	t0=$(now); lvm vgchange -q -an --config "$LVMCONF" "$VG" >/dev/null; down+=("$(secs "$t0")")
	t0=$(now); lvm vgs --config "$LVMCONF" "$VG" >/dev/null; vgs+=("$(secs "$t0")")
done
row "vgchange -ay (VG on a loop device, no LV)" "one lvm process; LVM confined to the PV" "${up[@]}"
row "vgchange -an" "" "${down[@]}"
row "vgs (any one lvm command)" "most of it is the exit's io_destroy (global/use_aio)" "${vgs[@]}"

# --- mount ------------------------------------------------------------
say "mount ext4"
loopdev "$WORK/fs.img" 64M && fsdev=$LOOP
mkfs.ext4 -q -F "$fsdev" >/dev/null
mkdir -p "$WORK/mnt" && MOUNTS+=("$WORK/mnt")
m=() u=()
for i in $(seq "$RUNS"); do
	t0=$(now); mount -t ext4 -o rw "$fsdev" "$WORK/mnt"; m+=("$(secs "$t0")")
	t0=$(now); umount "$WORK/mnt"; u+=("$(secs "$t0")")
done
row "mount ext4 (loop device)" "" "${m[@]}"
row "umount ext4" "" "${u[@]}"

# --- docker -----------------------------------------------------------
say "private dockerd"
loopdev "$WORK/docker.img" 512M && ddev=$LOOP
mkfs.ext4 -q -F "$ddev" >/dev/null
DM=$WORK/docker
mkdir -p "$DM" && mount -t ext4 "$ddev" "$DM" && MOUNTS+=("$DM")
nd=vlim-d-$ID
ip netns add "$nd" && NETNS+=("$nd")
ip -n "$nd" link set lo up
# dockerd_start ROOT RUN: a private dockerd on data root ROOT, its run
# directory RUN (a node's /run), in the docker namespace and in pid and
# mount namespaces of its own; sets DPID (the unshare, whose death kills
# the namespace) and SOCK.
dockerd_start() {
	local root=$1 run=$2
	mkdir -p "$root" "$run/exec"
	echo '{}' >"$run/daemon.json"
	SOCK=$run/docker.sock
	# ip netns exec mounts the namespace's own /sys, without the cgroup
	# tree: mounted again inside the daemon's mount namespace.
	ip netns exec "$nd" unshare --pid --fork --kill-child --mount --mount-proc \
		sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"' sh dockerd --data-root "$root" --exec-root "$run/exec" --pidfile "$run/docker.pid" -H "unix://$SOCK" \
		--config-file "$run/daemon.json" --containerd-namespace "vlim-$ID" --containerd-plugins-namespace "vlim-$ID-plugins" \
		--iptables=false --ip-masq=false --cgroup-parent "/vigil-limits-$ID" >"$run/dockerd.log" 2>&1 &
	DPID=$!
	PIDS+=("$DPID")
}
# power_off: SIGKILL the daemon's pid namespace (dockerd, containerd, the
# shims and the containers at once, as a power-off) and wait for it.
# The namespace's init (dockerd) is killed, not unshare: unshare returns
# once the init has exited, which is after every other process of the
# namespace is gone.
power_off() {
	local init
	init=$(cat "/proc/$DPID/task/$DPID/children" 2>/dev/null || true)
	kill -KILL ${init:-$DPID}
	wait "$DPID" 2>/dev/null || true
}
ready() { "$BIN/limitsprobe" wait -unix "$SOCK" -url http://docker/_ping -since "$1" -timeout 60s; }
d=()
for i in $(seq "$RUNS"); do
	t0=$(now)
	dockerd_start "$DM/fresh$i" "$WORK/run-fresh$i"
	x=$(ready "$t0") || { tail -20 "$WORK/run-fresh$i/dockerd.log" >&2; exit 1; }
	d+=("$x")
	power_off
	rm -rf "${DM:?}/fresh$i"
done
row "dockerd ready, fresh data root" "start → /_ping answers" "${d[@]}"

say "the registry image"
rootfs=$WORK/rootfs
mkdir -p "$rootfs"/{bin,tmp,etc/docker/registry,usr/bin,var/lib/docker-registry}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh date sleep echo ls cat env true wget ps; do ln -s busybox "$rootfs/bin/$a"; done
reg=$(command -v docker-registry)
cp -L "$reg" "$rootfs/usr/bin/docker-registry"
for f in $(ldd "$reg" 2>/dev/null | grep -o '/[^ ]*'); do
	mkdir -p "$rootfs$(dirname "$f")" && cp -L "$f" "$rootfs$f"
done
printf 'version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n' \
	>"$rootfs/etc/docker/registry/config.yml"
tar -C "$rootfs" -cf "$WORK/rootfs.tar" .
t0=$(now)
dockerd_start "$DM/state" "$WORK/run-k0"
ready "$t0" >/dev/null || { tail -20 "$WORK/run-k0/dockerd.log" >&2; exit 1; }
docker -H "unix://$SOCK" import \
	--change 'CMD ["/bin/sh","-c","exec env REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=${STORAGE_PATH:-/var/lib/docker-registry} docker-registry serve /etc/docker/registry/config.yml"]' \
	--change 'EXPOSE 5000' "$WORK/rootfs.tar" registry:latest >/dev/null
mkdir -p "$DM/registrydata"
name=vlim-reg-$ID
# The lab's run_args: -v .../registrydata:/registrydata -e STORAGE_PATH=/registrydata -p 5000:5000
create=$(printf '{"Image":"registry:latest","Env":["STORAGE_PATH=/registrydata"],"ExposedPorts":{"5000/tcp":{}},"HostConfig":{"Binds":["%s:/registrydata"],"PortBindings":{"5000/tcp":[{"HostPort":"5000"}]}}}' "$DM/registrydata")
api() { curl -sf --unix-socket "$SOCK" -H 'Content-Type: application/json' "$@"; }
run_registry() { # the container created and started; prints the seconds it took
	local t0
	api -X DELETE "http://docker/containers/$name?force=1" >/dev/null 2>&1 || true
	t0=$(now)
	api -d "$create" "http://docker/containers/create?name=$name" >/dev/null
	api -X POST "http://docker/containers/$name/start" >/dev/null
	T1=$(now)
	secs "$t0" "$T1"
}
T1=
run_registry >/dev/null
ip netns exec "$nd" "$BIN/limitsprobe" wait -url http://127.0.0.1:5000/v2/ -timeout 30s >/dev/null
k=() r=() a=()
for i in $(seq "$RUNS"); do
	power_off
	t0=$(now)
	dockerd_start "$DM/state" "$WORK/run-k$i"
	x=$(ready "$t0") || { tail -20 "$WORK/run-k$i/dockerd.log" >&2; exit 1; }
	k+=("$x")
	# run_registry in this shell (T1 is read after it).
	out=$WORK/run.secs
	run_registry >"$out"
	r+=("$(cat "$out")")
	a+=("$(ip netns exec "$nd" "$BIN/limitsprobe" wait -url http://127.0.0.1:5000/v2/ -since "$T1" -timeout 30s)")
done
power_off
row "dockerd ready, data root of a killed dockerd" "its container recorded running; a new exec root, as a peer's /run" "${k[@]}"
row "registry container create + start (docker API)" "the lab's image and run_args; until start returns" "${r[@]}"
row "registry's first answer to GET /v2/" "from the start's return, through the published port" "${a[@]}"

echo
echo "Floors on $(hostname) ($(nproc) cores, $(uname -r)), $RUNS runs each, $(date -u +%Y-%m-%d):"
echo
echo "| phase | min ms | median ms | max ms | runs | what |"
echo "|---|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
