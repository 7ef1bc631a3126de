package daemon

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-ha/vigil/core/status"
)

// metrics is the Prometheus side of the daemon: its own registry (no
// global state), gauges refreshed at scrape time from the cluster view.
type metrics struct {
	d        *Daemon
	reg      *prometheus.Registry
	svc      *prometheus.GaugeVec
	rejects  *prometheus.CounterVec
	actions  *prometheus.CounterVec
	fences   *prometheus.CounterVec
	hbAge    *prometheus.Desc
	restarts *prometheus.Desc
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{d: d, reg: prometheus.NewRegistry()}
	m.svc = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_service_instance_status",
		Help: "Local instance status of each service, one series per status value set to 1 for the current one."},
		[]string{"service", "kind", "status"})
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_heartbeat_rejects_total",
		Help: "Cluster messages dropped (bad tag, replay, foreign node, torn slot), by heartbeat."}, []string{"hb"})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_actions_total",
		Help: "Service actions run by this daemon, by action and result."}, []string{"action", "result"})
	m.fences = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_fence_total",
		Help: "Fencing attempts of lost peers, by result."}, []string{"result"})
	m.hbAge = prometheus.NewDesc("vigil_heartbeat_age_seconds", "Seconds since the last beat of each peer on each heartbeat.", []string{"peer", "hb"}, nil)
	m.restarts = prometheus.NewDesc("vigil_plugin_restarts_total", "Plugin processes restarted after they died.", []string{"plugin"}, nil)
	m.reg.MustRegister(m.svc, m.rejects, m.actions, m.fences, m)
	return m
}

// Describe and Collect make the scrape-time metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.hbAge
	ch <- m.restarts
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for name, p := range m.d.view.Snapshot().Peers {
		for hb, seen := range p.HB {
			age := -1.0 // never heard
			if !seen.LastBeat.IsZero() {
				age = now.Sub(seen.LastBeat).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(m.hbAge, prometheus.GaugeValue, age, name, hb)
		}
	}
	for plugin, n := range m.d.host.Restarts() {
		ch <- prometheus.MustNewConstMetric(m.restarts, prometheus.CounterValue, float64(n), plugin)
	}
}

func (m *metrics) serviceStatus(name string, st status.Service) {
	for _, kind := range []struct {
		k string
		v status.Status
	}{{"avail", st.Avail}, {"overall", st.Overall}} {
		for _, s := range status.All() {
			val := 0.0
			if s == kind.v {
				val = 1
			}
			m.svc.WithLabelValues(name, kind.k, s.String()).Set(val)
		}
	}
}

func (m *metrics) reject(hb string) { m.rejects.WithLabelValues(hb).Inc() }

func (m *metrics) action(action string, ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.actions.WithLabelValues(action, result).Inc()
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

func (m *metrics) fence(ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.fences.WithLabelValues(result).Inc()
}
