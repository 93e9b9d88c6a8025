package pluginhost

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's Prometheus collectors. Labels are the plugin's
// configured name and fixed method names, so cardinality stays bounded by
// the configuration.
type metrics struct {
	state    *prometheus.GaugeVec
	restarts *prometheus.CounterVec
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_plugin_state",
			Help: "1 for the state each plugin is in, 0 for the others.",
		}, []string{"plugin", "state"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_plugin_restarts_total",
			Help: "Times a plugin process was restarted after it exited or stopped answering.",
		}, []string{"plugin"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_plugin_calls_total",
			Help: "Calls to plugins, by plugin, method and result (ok, error, unavailable).",
		}, []string{"plugin", "method", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_plugin_call_duration_seconds",
			Help:    "Time of a plugin call, by plugin and method, including any wait for a restarting plugin.",
			Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"plugin", "method"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.state, m.restarts, m.calls, m.latency}
}

var allStates = []State{StateStarting, StateRunning, StateRestarting, StateDegraded, StateFailed, StateStopped}

func (m *metrics) setState(plugin string, s State) {
	for _, st := range allStates {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(plugin, string(st)).Set(v)
	}
}
