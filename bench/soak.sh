#!/usr/bin/env bash
# make soak DURATION=10m RATE=1000: in a two-node lab running the seed's
# services under orchestrate = ha (heartbeats at 0.2 s / 1 s, as
# e2e/labtest), garbage at both nodes' hb#1 port (UDP and TCP) from the
# client namespace for DURATION at RATE packets a second in all (a TCP
# connection counts as one; e2e/lab/garbage says what it sends). Every
# second, each node's status is read: the peer must stay ready and its
# hb#1 fresh. Before and after: vigild's and its hb-net plugin's RSS, the
# status call's round trip (`svcmon --format json`, median of 20) and
# vigil_heartbeat_rejects_total. The last lines sum it up; exit 1 when a
# peer was lost, a node fenced or a fencing started (a line of either
# vigild log during the soak, or a sample), or when a sample saw hb#1
# stale or the peer not ready (the disk heartbeat would hide a network
# heartbeat the garbage silenced). What the run made is kept in $OUT (default /tmp/vigil-soak):
# samples, the sender's line, the logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${VIGIL_BIN_DIR:-$here/../bin}
LAB=${LAB:-soak}
DURATION=${DURATION:-10m}
RATE=${RATE:-1000}
HB_INTERVAL=${HB_INTERVAL:-0.2s}
HB_TIMEOUT=${HB_TIMEOUT:-1s}
TCP_SHARE=${TCP_SHARE:-0.2}
KEYED_SHARE=${KEYED_SHARE:-0.1}
OUT=${OUT:-/tmp/vigil-soak}
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root"; exit 1; }
[ -x "$BIN/garbage" ] || { echo "soak: no $BIN/garbage: go build -o $BIN/ ./e2e/lab/garbage (make soak does)"; exit 1; }
. "$here/../e2e/lab/lib.sh"
rm -rf "$OUT"; mkdir -p "$OUT"
sender=
finish() {
	local rc=$?
	[ -z "$sender" ] || kill "$sender" 2>/dev/null || true
	for n in /run/vigil-lab/"$LAB"/nodes/*; do
		[ -d "$n" ] && cp "$n/vigild.log" "$OUT/$(basename "$n").log" 2>/dev/null || true
	done
	lab down >/dev/null 2>&1 || true
	[ $rc -eq 0 ] || echo "soak: failed (exit $rc); samples and the nodes' logs are in $OUT"
	exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

lab down >/dev/null 2>&1 || true
lab up --nodes 2 --hb-interval "$HB_INTERVAL" --hb-timeout "$HB_TIMEOUT" >"$OUT/up.log"
for s in registry.opensvc.com busybox.opensvc.com; do wait_for n1 "$(avail n1 "$s")" up 180 "$s up on n1"; done
for s in registry.opensvc.com busybox.opensvc.com; do svcmgr_on n1 -s "$s" set orchestrate=ha >/dev/null; done
for s in registry.opensvc.com busybox.opensvc.com; do
	until grep -q "orchestrate = ha" "/run/vigil-lab/$LAB/nodes/n2/etc/$s.env" 2>/dev/null; do sleep 0.1; done
done
wait_for n1 "d['node']['n2']['state']" ready 60 "n2 ready at n1"
wait_for n2 "d['node']['n1']['state']" ready 60 "n1 ready at n2"

# measure LABEL: RSS of each vigild and its hb-net plugin, the status
# round trip (median of 20 svcmon calls), the rejects counter, as JSON.
measure() {
	local pids
	pids=$(lab_json "' '.join('%s=%s' % (n['name'], n.get('vigild_pid', 0)) for n in d['nodes'])")
	python3 - "$1" "$BIN" "/run/vigil-lab/$LAB" "$pids" <<'PY'
import glob, json, os, statistics, subprocess, sys, time
label, bin, labdir, pids = sys.argv[1], sys.argv[2], sys.argv[3], dict(p.split("=") for p in sys.argv[4].split())
def rss(pid):  # MiB
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def cpu(pid):  # seconds of user + system time
    f = open("/proc/%s/stat" % pid).read().rsplit(") ", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def plugin(pid, name):
    for f in glob.glob("/proc/%s/task/*/children" % pid):
        for c in open(f).read().split():
            try:
                if name in open("/proc/%s/cmdline" % c).read():
                    return c
            except OSError:
                pass
out = {}
for node, pid in sorted(pids.items()):
    run = "%s/nodes/%s/run" % (labdir, node)
    ms = []
    for _ in range(20):
        t = time.perf_counter()
        if subprocess.run([bin + "/svcmon", "--run-dir", run, "--format", "json"], stdout=subprocess.DEVNULL).returncode != 0:
            break
        ms.append((time.perf_counter() - t) * 1e3)
    if pid == "0" or len(ms) < 20:  # the node is off (fenced) or its vigild does not answer
        out[node] = {k: None for k in ("vigild_pid", "rss_mib", "hbnet_rss_mib", "cpu_s", "hbnet_cpu_s", "status_ms", "status_ms_max", "rejects", "plugin_restarts")}
        continue
    m = subprocess.run(["nsenter", "--net=/proc/%s/ns/net" % pid, "curl", "-s", "-m", "5", "http://127.0.0.1:9100/metrics"],
                       capture_output=True, text=True).stdout
    rejects = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("vigil_heartbeat_rejects_total"))
    restarts = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("vigil_plugin_restarts_total"))
    hb = plugin(pid, "hb-net")
    out[node] = {"vigild_pid": int(pid), "rss_mib": rss(pid), "hbnet_rss_mib": rss(hb) if hb else None,
                 "cpu_s": cpu(pid), "hbnet_cpu_s": cpu(hb) if hb else None,
                 "status_ms": statistics.median(ms), "status_ms_max": max(ms),
                 "rejects": int(rejects), "plugin_restarts": int(restarts), "metrics": bool(m)}
json.dump(out, open("%s.json" % label, "w"))
print(label, json.dumps(out))
PY
}
measure "$OUT/before"
for n in n1 n2; do svcmon_on "$n" --cluster >"$OUT/cluster-before-$n.txt" 2>&1 || true; done
declare -A offset
for n in n1 n2; do offset[$n]=$(stat -c %s "$(log_of "$n")"); done

CLIENT_NS=$(lab_json "d['client_netns']")
targets=$(lab_json "','.join(n['address'] + ':10000' for n in d['nodes'])")
echo "soak: $DURATION at $RATE/s (tcp share $TCP_SHARE, keyed share $KEYED_SHARE) to $targets from $CLIENT_NS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
nsenter --net="/run/netns/$CLIENT_NS" "$BIN/garbage" -targets "$targets" -rate "$RATE" -duration "$DURATION" \
	-tcp-share "$TCP_SHARE" -keyed-share "$KEYED_SHARE" \
	-secret-file "/run/vigil-lab/$LAB/nodes/n1/etc/cluster.secret" -cluster "$LAB" >"$OUT/garbage.out" 2>&1 &
sender=$!

# One sample a second of each node's view of its peer, until the sender
# is done; lines of the logs that say a peer was lost or fenced are
# printed as they come.
python3 - "$BIN" "/run/vigil-lab/$LAB" "$sender" "${offset[n1]}" "${offset[n2]}" "$OUT/samples.jsonl" <<'PY'
import datetime, json, os, re, subprocess, sys, time
bin, labdir, sender, off1, off2, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
offsets = {"n1": off1, "n2": off2}
bad = re.compile(r"peer lost|node fenced|fencing", re.I)
def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie (exited, not yet waited for by the shell) is done
    return open("/proc/%d/stat" % pid).read().split(") ")[1][0] != "Z"
out = open(path, "w")
while alive(sender):
    t0 = time.time()
    for node, peer in (("n1", "n2"), ("n2", "n1")):
        s = {"t": t0, "node": node}
        c, called = time.perf_counter(), time.time()
        try:
            r = subprocess.run([bin + "/svcmon", "--run-dir", "%s/nodes/%s/run" % (labdir, node), "--format", "json"],
                               capture_output=True, text=True, timeout=10)
            s["status_ms"] = (time.perf_counter() - c) * 1e3
            d = json.loads(r.stdout)
            p = d["node"][peer]
            s["state"] = p["state"]
            hb = p.get("hb", {}).get("hb#1", {})
            s["hb1_stale"] = bool(hb.get("stale"))
            lb = hb.get("last_beat")
            if lb:
                ts = datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", lb.replace("Z", "+00:00")))
                # from the call's start: the snapshot is no older, and
                # the call's own time (up to a second on this busy
                # host) is not counted as silence
                s["hb1_age"] = max(0.0, called - ts.timestamp())
            s["rejects"] = d.get("rejects", {})
        except Exception as e:  # a status that does not answer is a finding too
            s["error"] = repr(e)
        with open("%s/nodes/%s/vigild.log" % (labdir, node), errors="replace") as f:
            f.seek(offsets[node])
            chunk = f.read()
            offsets[node] += len(chunk.encode())
            for line in chunk.splitlines():
                if bad.search(line):
                    print("soak: %s: %s" % (node, line), flush=True)
        out.write(json.dumps(s) + "\n")
    out.flush()
    time.sleep(max(0, 1 - (time.time() - t0)))
PY
rc=0; wait "$sender" || rc=$?
sender=
cat "$OUT/garbage.out"
[ $rc -eq 0 ] || { echo "soak: the sender failed (exit $rc)"; exit 1; }

measure "$OUT/after" || true
for n in n1 n2; do svcmon_on "$n" --cluster >"$OUT/cluster-after-$n.txt" 2>&1 || true; done
for n in n1 n2; do tail -c +"$(( ${offset[$n]} + 1 ))" "$(log_of "$n")" >"$OUT/$n-soak.log"; done

python3 - "$OUT" "$DURATION" "$RATE" <<'PY'
import json, re, statistics, sys
out, duration, rate = sys.argv[1], sys.argv[2], sys.argv[3]
before, after = json.load(open(out + "/before.json")), json.load(open(out + "/after.json"))
samples = [json.loads(l) for l in open(out + "/samples.jsonl")]
g = open(out + "/garbage.out").read()
sent = re.search(r"sent=(\d+)", g).group(1)
elapsed = re.search(r"elapsed=([\d.]+)s", g).group(1)
bad = re.compile(r"peer lost|node fenced|fencing", re.I)
lines = {n: [l for l in open("%s/%s-soak.log" % (out, n), errors="replace") if bad.search(l)] for n in ("n1", "n2")}
lost = sum(len(re.findall("peer lost", "".join(v))) for v in lines.values())
unready = sum(1 for s in samples if s.get("state") not in ("ready", None))
fenced = sum(len([l for l in v if re.search("node fenced|fencing", l, re.I)]) for v in lines.values())
stale = sum(1 for s in samples if s.get("hb1_stale"))
errors = sum(1 for s in samples if "error" in s)
ages = [s["hb1_age"] for s in samples if "hb1_age" in s]
during = [s["status_ms"] for s in samples if "status_ms" in s]
def per(d, k, fmt):
    return ",".join("%s:%s" % (n, fmt % d[n][k] if d[n][k] is not None else "?") for n in sorted(d))
def delta(k, fmt="%.1fs"):
    return ",".join("%s:%s" % (n, fmt % (after[n][k] - before[n][k]) if after[n][k] is not None and before[n][k] is not None else "?") for n in sorted(after))
rejects, restarts = delta("rejects", "%d"), delta("plugin_restarts", "%d")
# The first line is the one the README quotes; the second says more.
print("soak: duration=%.0fs rate=%s/s sent=%s lost=%d fenced=%d rss_before=%s rss_after=%s status_ms_before=%s status_ms_after=%s rejects=%s" % (
    float(elapsed), rate, sent, lost, fenced, per(before, "rss_mib", "%.1fMiB"), per(after, "rss_mib", "%.1fMiB"),
    per(before, "status_ms", "%.1f"), per(after, "status_ms", "%.1f"), rejects))
print("soak: unready_samples=%d hb1_stale_samples=%d hb1_age_max=%.2fs samples=%d status_errors=%d status_ms_during=median:%.1f,max:%.1f hbnet_rss_before=%s hbnet_rss_after=%s cpu_during=%s hbnet_cpu_during=%s plugin_restarts=%s" % (
    unready, stale, max(ages) if ages else -1, len(samples), errors, statistics.median(during) if during else -1, max(during) if during else -1,
    per(before, "hbnet_rss_mib", "%.1fMiB"), per(after, "hbnet_rss_mib", "%.1fMiB"), delta("cpu_s"), delta("hbnet_cpu_s"), restarts))
for n, v in lines.items():
    for l in v[:20]:
        print("soak: %s: %s" % (n, l.rstrip()))
sys.exit(1 if lost or fenced or unready or stale else 0)
PY
