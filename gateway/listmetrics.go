package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthgw/berth/proxy"
)

// listMetrics exports the proxy's list memory budget and the lists it
// stopped early. They are read from the proxy when scraped.
func listMetrics(px *proxy.Proxy) []prometheus.Collector {
	gauge := func(name, help string, v func(proxy.ListMemory) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v(px.ListMemory())) })
	}
	stopped := func(reason string, v func(proxy.ListStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "berth_proxy_lists_stopped_total",
			Help:        "Post-processed lists stopped before their answer, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(v(px.ListStats())) })
	}
	return []prometheus.Collector{
		gauge("berth_proxy_list_memory_bytes", "Bytes held by post-processed lists now.",
			func(m proxy.ListMemory) int64 { return m.Held }),
		gauge("berth_proxy_list_memory_peak_bytes", "Most bytes post-processed lists held at once since start.",
			func(m proxy.ListMemory) int64 { return m.Peak }),
		gauge("berth_proxy_list_memory_budget_bytes", "The list memory budget (proxy.list_memory_budget).",
			func(m proxy.ListMemory) int64 { return m.Limit }),
		stopped("memory_busy", func(s proxy.ListStats) int64 { return s.Refused }),
		stopped("over_budget", func(s proxy.ListStats) int64 { return s.OverBudget }),
		stopped("client_gone", func(s proxy.ListStats) int64 { return s.ClientGone }),
		stopped("time_budget", func(s proxy.ListStats) int64 { return s.TimedOut }),
	}
}
