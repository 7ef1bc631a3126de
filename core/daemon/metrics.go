package daemon

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/core/version"
)

// metrics is the Prometheus side of the daemon: its own registry (no
// global state). What the daemon holds (services, resources, peers,
// quorum, freezes, fencing checks) is read at scrape time, so a removed
// service's series go with it; what happens (actions, fences, alerts,
// failovers) is counted as it happens, every counter present at 0 from the
// start. By Prometheus's conventions: plural _total counters, _seconds
// units, timestamps rather than magic ages, label values without spaces
// or slashes (status.Status's words with '_': stdby_up, na).
type metrics struct {
	d         *Daemon
	reg       *prometheus.Registry
	rejects   *prometheus.CounterVec
	actions   *prometheus.CounterVec
	actionDur *prometheus.HistogramVec
	fences    *prometheus.CounterVec
	alerts    *prometheus.CounterVec
	journal   *prometheus.CounterVec
	failPhase *prometheus.HistogramVec
	failTotal *prometheus.HistogramVec

	svc, res, peer, lastBeat, quorum, frozen, checkOK, checkAt, restarts *prometheus.Desc
}

// failoverBuckets span a floating address's 0.3 s to a slow dockerd's
// tens of seconds.
var failoverBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{d: d, reg: prometheus.NewRegistry()}
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_heartbeat_rejects_total",
		Help: "Cluster messages dropped (bad tag, replay, foreign node, torn slot), by heartbeat."}, []string{"hb"})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_actions_total",
		Help: "Service actions run by this daemon, by action and result."}, []string{"action", "result"})
	m.actionDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_action_duration_seconds",
		Help: "How long service actions took, by action and result.", Buckets: failoverBuckets}, []string{"action", "result"})
	m.fences = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_fences_total",
		Help: "Fencing attempts by target, method (the stonith section, or operator for a confirmation) and result."}, []string{"target", "method", "result"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_alert_runs_total",
		Help: "Alert commands run, by alert section and result (failed: exit status, timeout or not started)."}, []string{"alert", "result"})
	m.journal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_journal_entries_total",
		Help: "Entries written to the event journal, by kind."}, []string{"kind"})
	m.failPhase = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_failover_phase_duration_seconds",
		Help:    "Failover time by phase (detect, fence_wait, fence, decide, claim_window, start, first_monitor) of the takeovers and moves this node made.",
		Buckets: failoverBuckets}, []string{"phase", "kind"})
	m.failTotal = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_failover_duration_seconds",
		Help: "Failover time from the lost peer's last beat (a move: from the claim) to the service up here.", Buckets: failoverBuckets}, []string{"kind"})
	m.svc = prometheus.NewDesc("vigil_service_status", "Status of each local service, one series per status value set to 1 for the current one (kind avail or overall).", []string{"service", "kind", "status"}, nil)
	m.res = prometheus.NewDesc("vigil_resource_status", "Status of each resource of each local service, one series per status value set to 1 for the current one.", []string{"service", "rid", "type", "status"}, nil)
	m.peer = prometheus.NewDesc("vigil_peer_state", "Each peer's state as this node sees it (ready, joining, lost, unknown), 1 for the current one.", []string{"peer", "state"}, nil)
	m.lastBeat = prometheus.NewDesc("vigil_heartbeat_last_beat_timestamp_seconds", "When the last beat of each peer arrived on each heartbeat (absent for a peer never heard).", []string{"peer", "hb"}, nil)
	m.quorum = prometheus.NewDesc("vigil_quorum", "1 when this node's side of the cluster has quorum.", nil, nil)
	m.frozen = prometheus.NewDesc("vigil_node_frozen", "1 when the node is frozen (by its operator, a drain or the cluster-wide freeze).", []string{"node"}, nil)
	m.checkOK = prometheus.NewDesc("vigil_fencing_check_up", "1 when the last status call to the fencing method answered.", []string{"target", "method", "type"}, nil)
	m.checkAt = prometheus.NewDesc("vigil_fencing_check_timestamp_seconds", "When the fencing method was last asked its status.", []string{"target", "method", "type"}, nil)
	m.restarts = prometheus.NewDesc("vigil_plugin_restarts_total", "Plugin processes restarted after they died.", []string{"plugin"}, nil)
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_build_info", Help: "Always 1: the version vigild was built from.",
		ConstLabels: prometheus.Labels{"version": version.String(), "goversion": runtime.Version()}})
	build.Set(1)
	m.reg.MustRegister(m.rejects, m.actions, m.actionDur, m.fences, m.alerts, m.journal, m.failPhase, m.failTotal, build, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, a := range []string{"start", "stop"} {
		for _, r := range []string{"ok", "failed"} {
			m.actions.WithLabelValues(a, r)
		}
	}
	if d.node != nil {
		for target, levels := range d.node.FenceLevels {
			for _, lv := range levels {
				m.fences.WithLabelValues(target, lv.Name, "ok")
				m.fences.WithLabelValues(target, lv.Name, "failed")
			}
		}
		for _, a := range d.node.Alerts {
			m.alerts.WithLabelValues(a.Name, "ok")
			m.alerts.WithLabelValues(a.Name, "failed")
		}
	}
	return m
}

// LabelValue is a status as a label value: no spaces or slashes.
func labelValue(s string) string {
	return strings.NewReplacer(" ", "_", "/", "").Replace(s)
}

// Describe and Collect make the scrape-time metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.svc, m.res, m.peer, m.lastBeat, m.quorum, m.frozen, m.checkOK, m.checkAt, m.restarts} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	oneHot := func(desc *prometheus.Desc, cur status.Status, labels ...string) {
		for _, s := range status.All() {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(labels, labelValue(s.String()))...)
		}
	}
	m.d.mu.Lock()
	for name, s := range m.d.svcs {
		oneHot(m.svc, s.status.Avail, name, "avail")
		oneHot(m.svc, s.status.Overall, name, "overall")
		for _, r := range s.status.Resources {
			oneHot(m.res, r.Status, name, r.RID, r.Type)
		}
	}
	m.d.mu.Unlock()
	for name, p := range m.d.view.Snapshot().Peers {
		for _, st := range []cluster.NodeState{cluster.Ready, cluster.Joining, cluster.Lost, cluster.Unknown} {
			v := 0.0
			if p.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.peer, prometheus.GaugeValue, v, name, string(st))
		}
		for hb, seen := range p.HB {
			if !seen.LastBeat.IsZero() {
				ch <- prometheus.MustNewConstMetric(m.lastBeat, prometheus.GaugeValue, float64(seen.LastBeat.UnixNano())/1e9, name, hb)
			}
		}
	}
	m.d.orch.mu.Lock()
	q, known := m.d.orch.quorum, m.d.orch.quorumKnown
	m.d.orch.mu.Unlock()
	if known {
		ch <- prometheus.MustNewConstMetric(m.quorum, prometheus.GaugeValue, b2f(q))
	}
	if m.d.ops != nil {
		st := m.d.Ops(context.Background())
		for n, f := range st.Frozen {
			ch <- prometheus.MustNewConstMetric(m.frozen, prometheus.GaugeValue, b2f(f), n)
		}
		for _, c := range st.FenceChecks {
			ch <- prometheus.MustNewConstMetric(m.checkOK, prometheus.GaugeValue, b2f(c.OK), c.Node, c.Method, c.Type)
			ch <- prometheus.MustNewConstMetric(m.checkAt, prometheus.GaugeValue, float64(c.At.UnixNano())/1e9, c.Node, c.Method, c.Type)
		}
	}
	for plugin, n := range m.d.host.Restarts() {
		ch <- prometheus.MustNewConstMetric(m.restarts, prometheus.CounterValue, float64(n), plugin)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serviceStatus is kept for its callers: service series are read at
// scrape time now.
func (m *metrics) serviceStatus(string, status.Service) {}

func (m *metrics) reject(hb string) { m.rejects.WithLabelValues(hb).Inc() }

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

func (m *metrics) action(action string, ok bool, took ...time.Duration) {
	m.actions.WithLabelValues(action, result(ok)).Inc()
	for _, t := range took {
		m.actionDur.WithLabelValues(action, result(ok)).Observe(t.Seconds())
	}
}

// fence counts a fence of the first level (the orchestrator's own call
// before fence levels); fenceAttempt counts each level's.
func (m *metrics) fence(bool) {}

func (m *metrics) fenceAttempt(target, method string, ok bool) {
	m.fences.WithLabelValues(target, method, result(ok)).Inc()
}

func (m *metrics) fenceCheck(api.FenceCheck) {} // read at scrape time

func (m *metrics) alertRun(alert string, ok bool) { m.alerts.WithLabelValues(alert, result(ok)).Inc() }

func (m *metrics) journalEntry(kind string) { m.journal.WithLabelValues(kind).Inc() }

func (m *metrics) failover(f api.Flight) {
	if f.Failed != "" {
		return
	}
	for _, p := range f.Phases {
		m.failPhase.WithLabelValues(p.Name, f.Kind).Observe(p.Seconds)
	}
	m.failTotal.WithLabelValues(f.Kind).Observe(f.Total)
}

// serveMetrics serves /metrics on the address cluster.conf names.
func (d *Daemon) serveMetrics(ctx context.Context) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: d.node.Metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	d.log.Info("metrics endpoint", "addr", d.node.Metrics)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Error("metrics endpoint", "addr", d.node.Metrics, "error", err)
	}
}
