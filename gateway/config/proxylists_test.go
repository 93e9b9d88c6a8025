package config

import (
	"strings"
	"testing"
	"time"
)

// The list budgets have documented defaults, follow BERTH_<PATH>, and
// refuse values that would break every list.
func TestListBudgets(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.ListMemoryBudget != 256<<20 || c.Proxy.ListTimeBudget.D() != 30*time.Second || c.Proxy.MaxListBytes != 256<<20 {
		t.Errorf("defaults: budget %d, time %s, max_list_bytes %d", c.Proxy.ListMemoryBudget, c.Proxy.ListTimeBudget.D(), c.Proxy.MaxListBytes)
	}
	c, err = Load("", envMap(map[string]string{"BERTH_PROXY_LIST_MEMORY_BUDGET": "67108864", "BERTH_PROXY_LIST_TIME_BUDGET": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.ListMemoryBudget != 64<<20 || c.Proxy.ListTimeBudget.D() != 5*time.Second {
		t.Errorf("from env: %d %s", c.Proxy.ListMemoryBudget, c.Proxy.ListTimeBudget.D())
	}
	for _, tt := range []struct{ env, value, key string }{
		{"BERTH_PROXY_LIST_MEMORY_BUDGET", "1000", "proxy.list_memory_budget"},
		{"BERTH_PROXY_LIST_MEMORY_BUDGET", "-1", "proxy.list_memory_budget"},
		{"BERTH_PROXY_LIST_TIME_BUDGET", "1ms", "proxy.list_time_budget"},
		{"BERTH_PROXY_LIST_TIME_BUDGET", "soon", "proxy.list_time_budget"},
	} {
		_, err := Load("", envMap(map[string]string{tt.env: tt.value}))
		ce, ok := err.(*Error)
		if !ok || ce.Key != tt.key || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: %v; want a one-line error naming %s", tt.env, tt.value, err, tt.key)
		}
	}
}
