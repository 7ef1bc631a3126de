#!/usr/bin/env bash
# make demo (single node, until the lab of issue 5 exists): the seed's
# busybox service on this host, started, shown and stopped through svcmgr
# and the real plugins, then everything torn down (also on Ctrl-C or
# failure).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VIGIL_BIN_DIR=${VIGIL_BIN_DIR:-$here/../../bin}
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (loop devices, mounts, LVM, docker)"; exit 1; }
. "$here/lib.sh"
trap sn_teardown EXIT
svcmgr() { "$VIGIL_BIN_DIR/svcmgr" "$@"; }

sn_log "set-up: loop devices, VG $SN_VG, ext4, veth $SN_VETH, busybox image in the data root"
sn_setup
sn_log "the plugins"
svcmgr plugins
sn_log "the seed's two service files validate unchanged"
svcmgr validate "$here/../../core/config/testdata/"*.env
sn_log "the service file (seed busybox, adapted to one host)"
cat "$VIGIL_CONFIG_DIR/$SN_SVC.env"
sn_log "svcmgr -s $SN_SVC print status (before start)"
svcmgr -s "$SN_SVC" print status
sn_log "svcmgr -s $SN_SVC start"
t=$(date +%s%N)
svcmgr -s "$SN_SVC" start
echo "start took $(sn_since "$t") s"
sn_log "svcmgr -s $SN_SVC print status"
svcmgr -s "$SN_SVC" print status
sn_log "svcmgr -s $SN_SVC docker ps (the service's private daemon)"
svcmgr -s "$SN_SVC" docker ps
sn_log "svcmgr -s $SN_SVC stop"
t=$(date +%s%N)
svcmgr -s "$SN_SVC" stop
echo "stop took $(sn_since "$t") s"
sn_log "svcmgr -s $SN_SVC print status"
svcmgr -s "$SN_SVC" print status
sn_log "tear-down"
