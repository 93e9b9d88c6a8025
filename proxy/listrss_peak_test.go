package proxy

// budgetPeak is the list budget's own peak, for BenchmarkListRSS.
func budgetPeak(p *Proxy) int64 { return p.ListMemory().Peak }
