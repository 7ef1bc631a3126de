# Shared by the single-node demo and the start benchmark: builds, on this
# host, what the seed's busybox service needs (a VG and two ext4
# filesystems on loop devices, a veth whose peer sits in a namespace of its
# own, the busybox image in the service's private data root) and tears it
# all down again. Source it; call sn_setup, then sn_teardown (trap it).
# Needs root and what `make deps` installs.

SN_ID=${SN_ID:-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')}
SN_BASE=${SN_BASE:-/tmp/vigil-sn-$SN_ID}
SN_SVC=busybox$SN_ID
SN_VG=vgbb$SN_ID
SN_NS=vigilsn$SN_ID
SN_VETH=vsn$SN_ID
SN_BRIDGE=bsn$SN_ID
SN_ADDR=10.232.$((16#${SN_ID:0:2} % 200 + 10)).10
SN_MNT=$SN_BASE/opt/busybox
SN_APPDATA=$SN_MNT/appdata
SN_TAG=vigil/busybox:date
export LVM_SUPPRESS_FD_WARNINGS=1

SN_T0=$(date +%s%N)
sn_log() { printf '\n[%6.2fs] == %s\n' "$(sn_since "$SN_T0")" "$*"; }
sn_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# The environment every svcmgr call of the demo gets: its own config,
# run and state directories, the plugins just built.
sn_env() {
	export VIGIL_CONFIG_DIR=$SN_BASE/etc VIGIL_RUN_DIR=$SN_BASE/run VIGIL_STATE_DIR=$SN_BASE/lib
	export VIGIL_PLUGIN_DIR=${VIGIL_BIN_DIR:?}
	export DOCKER_API_VERSION=1.41
}

sn_loop() { # size -> prints the loop device (runs in a subshell: state goes to files)
	local n; n=$(cat "$SN_BASE/loops" 2>/dev/null | wc -l)
	local img=$SN_BASE/disk$n.img
	truncate -s "$1" "$img"
	local dev; dev=$(losetup --find --show "$img")
	echo "$dev" >>"$SN_BASE/loops"
	echo "$dev"
}

sn_setup() {
	mkdir -p "$SN_BASE"/{etc,run,lib}
	sn_env
	SN_PV=$(sn_loop 64M); SN_ROOTDEV=$(sn_loop 64M); SN_DATADEV=$(sn_loop 512M)
	vgcreate -q "$SN_VG" "$SN_PV" >/dev/null
	mkfs.ext4 -q "$SN_ROOTDEV"; mkfs.ext4 -q "$SN_DATADEV"
	ip netns add "$SN_NS"
	ip link add "$SN_VETH" type veth peer name "${SN_VETH}p" netns "$SN_NS"
	ip link set "$SN_VETH" up
	# The private docker daemon gets a bridge of its own: dockerd 20.10
	# given --bridge=none deletes docker0, the system daemon's.
	ip link add "$SN_BRIDGE" type bridge
	ip addr add "198.18.$((16#${SN_ID:2:2} % 200 + 10)).1/24" dev "$SN_BRIDGE"
	ip link set "$SN_BRIDGE" up
	ip -n "$SN_NS" link set "${SN_VETH}p" up
	sn_write_service >"$VIGIL_CONFIG_DIR/$SN_SVC.env"
	# As in the seed, the image lives in the service's own data root.
	mkdir -p "$SN_MNT"; mount "$SN_ROOTDEV" "$SN_MNT"
	mkdir -p "$SN_APPDATA"; mount "$SN_DATADEV" "$SN_APPDATA"
	sn_load_image "$SN_APPDATA"
	umount "$SN_APPDATA"; umount "$SN_MNT"
}

sn_write_service() {
	cat <<CONF
# The seed's busybox.opensvc.com, adapted to one host: loop devices instead
# of LVs (no device-mapper here), a veth instead of eth0, a local image.
[DEFAULT]
orchestrate = start
app = OSVCLAB
service_type = DEV
nodes = $(hostname)
docker_data_dir = $SN_APPDATA
docker_daemon_args = --bridge=$SN_BRIDGE --iptables=false
CONF
	local i subset
	for i in 1 2 3 4 5 6 7; do
		case $i in 1) subset=00database ;; [2-5]) subset=01appservers ;; *) subset=02webservers ;; esac
		printf '\n[container#%d]\ntype = docker\nrun_image = %s\nsubset = %s\n' "$i" "$SN_TAG" "$subset"
	done
	cat <<CONF

[subset#container.docker:01appservers]
parallel = true

[subset#container.docker:02webservers]
parallel = false

[ip#1]
ipdev = $SN_VETH
ipname = $SN_ADDR
netmask = 24

[vg#1]
vgname = $SN_VG
scsireserv = false

[fs#1]
mnt_opt = rw
mnt = $SN_MNT
dev = $SN_ROOTDEV
type = ext4

[fs#2]
mnt_opt = rw
mnt = $SN_APPDATA
dev = $SN_DATADEV
type = ext4
CONF
}

# sn_load_image DATAROOT: a throwaway dockerd on DATAROOT imports a busybox
# image built from busybox-static (no registry), then stops.
sn_load_image() {
	local root=$SN_BASE/rootfs tmp=$SN_BASE/loader
	mkdir -p "$root/bin" "$tmp"
	cp /bin/busybox "$root/bin/busybox"
	for a in sh date sleep echo ls cat true; do ln -sf busybox "$root/bin/$a"; done
	tar -C "$root" -cf "$SN_BASE/rootfs.tar" .
	setsid dockerd --data-root "$1" --exec-root "$tmp/exec" --pidfile "$tmp/docker.pid" \
		-H "unix://$tmp/docker.sock" --bridge="$SN_BRIDGE" --iptables=false \
		--containerd-namespace "vigil-loader-$SN_ID" >"$tmp/dockerd.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do docker -H "unix://$tmp/docker.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
	docker -H "unix://$tmp/docker.sock" import \
		--change "CMD [\"/bin/sh\",\"-c\",\"trap 'exit 0' TERM; while true; do date; sleep 1 & wait \$!; done\"]" \
		"$SN_BASE/rootfs.tar" "$SN_TAG" >/dev/null
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

sn_teardown() {
	set +e
	sn_env
	[ -n "${SN_NO_STOP:-}" ] || "$VIGIL_BIN_DIR/svcmgr" -s "$SN_SVC" stop >/dev/null 2>&1
	local pf
	for pf in "$VIGIL_RUN_DIR/services/$SN_SVC/docker/docker.pid" "$SN_BASE/loader/docker.pid" "$SN_BASE/script/docker.pid"; do
		[ -f "$pf" ] && kill -9 "$(cat "$pf")" 2>/dev/null
	done
	umount -l "$SN_APPDATA" 2>/dev/null; umount -l "$SN_MNT" 2>/dev/null
	vgchange -q -an "$SN_VG" >/dev/null 2>&1; vgremove -q -f "$SN_VG" >/dev/null 2>&1
	ip link del "$SN_VETH" 2>/dev/null; ip netns del "$SN_NS" 2>/dev/null
	ip link del "$SN_BRIDGE" 2>/dev/null
	if [ -f "$SN_BASE/loops" ]; then
		while read -r dev; do pvremove -q "$dev" >/dev/null 2>&1; losetup -d "$dev"; done <"$SN_BASE/loops"
	fi
	rm -rf "$SN_BASE"
}
