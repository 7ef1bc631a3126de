# Shared by make demo and make bench-failover: drive a vigil-lab cluster
# from the host. Source it with BIN (the binaries) and LAB (the lab name) set.

since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
lab() { "$BIN/vigil-lab" --name "$LAB" "$@"; }
run_of() { echo "/run/vigil-lab/$LAB/nodes/$1/run"; }
log_of() { echo "/run/vigil-lab/$LAB/nodes/$1/vigild.log"; }
svcmon_on() { local n=$1; shift; "$BIN/svcmon" --run-dir "$(run_of "$n")" "$@"; }
svcmgr_on() { local n=$1; shift; "$BIN/svcmgr" --run-dir "$(run_of "$n")" --config-dir "/run/vigil-lab/$LAB/nodes/$n/etc" "$@"; }
# view NODE EXPR: a python expression over NODE's cluster status (d).
view() { svcmon_on "$1" --format json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" 2>/dev/null || true; }
avail() { echo "d['node']['$1']['services']['$2']['status']['avail']"; }
# wait_for NODE EXPR EXPECTED TIMEOUT WHAT
wait_for() {
	local end=$(( $(date +%s) + $4 ))
	until [ "$(view "$1" "$2")" = "$3" ]; do
		[ "$(date +%s)" -lt "$end" ] || { echo "lab: timed out waiting for $5" >&2; return 1; }
		sleep 0.05
	done
}
lab_json() { lab status --format json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# secs_after LOG T0 PATTERN: seconds from T0 (unix ns) to the first line of
# LOG at or after T0 matching PATTERN ("?" when none).
secs_after() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys, re, datetime
path, t0, pat = sys.argv[1], int(sys.argv[2]) / 1e9, re.compile(sys.argv[3])
for line in open(path, errors="replace"):
    ts = line.split(" ", 1)[0]
    try:
        t = datetime.datetime.strptime(ts.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        continue
    if t >= t0 and pat.search(line):
        print("%.2f" % (t - t0))
        break
else:
    print("?")
PY
}
