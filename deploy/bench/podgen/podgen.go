// Package podgen writes realistic Kubernetes pods as JSON, for the
// benchmarks under deploy/bench, proxy/*_bench_test.go and
// proxy/listquery, so every list figure describes the same pods.
package podgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Pod writes one realistic pod as the apiserver serializes it: field
// order as in the Go types, labels and annotations, an owner reference,
// projected service-account volume, two containers with env, resources,
// a probe and mounts, and a status with conditions and container
// statuses. A pod comes out at about 3.9 KB, which is typical of
// real Deployments' pods (without managedFields). i numbers the pod (it
// feeds its resourceVersion); r makes the rest.
func Pod(b *strings.Builder, r *rand.Rand, i int) {
	const hashChars = "bcdfghjklmnpqrstvwxz2456789"
	pick := func(n int) string {
		var s [10]byte
		for j := 0; j < n; j++ {
			s[j] = hashChars[r.IntN(len(hashChars))]
		}
		return string(s[:n])
	}
	uid := func() string {
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16), r.Uint64()&(1<<48-1))
	}
	apps := [...]string{"web", "api", "worker", "cache", "gateway", "billing", "search", "auth"}
	app := apps[r.IntN(len(apps))]
	ns := "team-" + strconv.Itoa(r.IntN(40))
	rs := app + "-" + pick(9)
	name := rs + "-" + pick(5)
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	started := created.Add(time.Duration(2+r.IntN(30)) * time.Second)
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	node := fmt.Sprintf("node-%03d", r.IntN(200))
	podIP := fmt.Sprintf("10.%d.%d.%d", 16+r.IntN(16), r.IntN(256), 1+r.IntN(254))
	hostIP := fmt.Sprintf("192.168.%d.%d", r.IntN(4), 1+r.IntN(254))
	phase := "Running"
	if r.IntN(20) == 0 {
		phase = [...]string{"Pending", "Succeeded", "Failed"}[r.IntN(3)]
	}
	restarts := 0
	if r.IntN(5) == 0 {
		restarts = r.IntN(40)
	}
	ver := fmt.Sprintf("1.%d.%d", r.IntN(30), r.IntN(10))
	fmt.Fprintf(b, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"generateName":%q,"namespace":%q,"uid":%q,"resourceVersion":"%d","creationTimestamp":%q,`,
		name, rs+"-", ns, uid(), 1000000+i*7+r.IntN(7), ts(created))
	fmt.Fprintf(b, `"labels":{"app.kubernetes.io/name":%q,"app.kubernetes.io/instance":"%s-%s","app.kubernetes.io/version":%q,"app.kubernetes.io/part-of":"shop","app.kubernetes.io/managed-by":"Helm","pod-template-hash":%q,"tier":%q},`,
		app, app, ns, ver, rs[len(app)+1:], [...]string{"frontend", "backend", "data"}[r.IntN(3)])
	fmt.Fprintf(b, `"annotations":{"kubectl.kubernetes.io/restartedAt":%q,"prometheus.io/scrape":"true","prometheus.io/port":"9090","cni.projectcalico.org/podIP":"%s/32"},`,
		ts(created.Add(-time.Hour)), podIP)
	fmt.Fprintf(b, `"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}]},`, rs, uid())
	tok := pick(5)
	fmt.Fprintf(b, `"spec":{"volumes":[{"name":"config","configMap":{"name":"%s-config","defaultMode":420}},{"name":"kube-api-access-%s","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}],`, app, tok)
	b.WriteString(`"containers":[`)
	fmt.Fprintf(b, `{"name":%q,"image":"registry.example.com/shop/%s:%s","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}],`, app, app, ver)
	b.WriteString(`"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],`)
	fmt.Fprintf(b, `"resources":{"limits":{"cpu":"%dm","memory":"%dMi"},"requests":{"cpu":"%dm","memory":"%dMi"}},`, 500+100*r.IntN(10), 256*(1+r.IntN(8)), 100+50*r.IntN(8), 128*(1+r.IntN(8)))
	fmt.Fprintf(b, `"volumeMounts":[{"name":"config","readOnly":true,"mountPath":"/etc/%s"},{"name":"kube-api-access-%s","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],`, app, tok)
	b.WriteString(`"livenessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},"initialDelaySeconds":10,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"},`)
	fmt.Fprintf(b, `{"name":"envoy","image":"envoyproxy/envoy:v1.30.%d","args":["--config-path","/etc/envoy/envoy.yaml"],"ports":[{"name":"admin","containerPort":9901,"protocol":"TCP"}],"resources":{"limits":{"cpu":"200m","memory":"128Mi"},"requests":{"cpu":"50m","memory":"64Mi"}},"volumeMounts":[{"name":"kube-api-access-%s","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],`, r.IntN(5), tok)
	fmt.Fprintf(b, `"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":%q,"serviceAccount":%q,"nodeName":%q,"schedulerName":"default-scheduler"},`, app, app, node)
	fmt.Fprintf(b, `"status":{"phase":%q,"conditions":[{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":%q},{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":%q},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":%q}],`,
		phase, ts(created), ts(started.Add(8*time.Second)), ts(created))
	fmt.Fprintf(b, `"hostIP":%q,"podIP":%q,"podIPs":[{"ip":%q}],"startTime":%q,"containerStatuses":[`, hostIP, podIP, podIP, ts(created))
	fmt.Fprintf(b, `{"name":%q,"state":{"running":{"startedAt":%q}},"lastState":{},"ready":true,"restartCount":%d,"image":"registry.example.com/shop/%s:%s","containerID":"containerd://%016x%016x%016x%016x","started":true},`,
		app, ts(started), restarts, app, ver, r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	fmt.Fprintf(b, `{"name":"envoy","state":{"running":{"startedAt":%q}},"lastState":{},"ready":true,"restartCount":0,"image":"docker.io/envoyproxy/envoy:v1.30.2","containerID":"containerd://%016x%016x%016x%016x","started":true}],"qosClass":"Burstable"}}`,
		ts(started), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}

// ListChunks returns n pods as PodList chunks of up to per items,
// exactly as a chunked list call (limit=per) would deliver them.
func ListChunks(n, per int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 42))
	var chunks [][]byte
	var b strings.Builder
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		b.Reset()
		b.WriteString(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"987654321"`)
		if end < n {
			fmt.Fprintf(&b, `,"continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTg3NjU0MzIxLCJzdGFydCI6InBvZC0lZCJ9-%d","remainingItemCount":%d`, end, n-end)
		}
		b.WriteString(`},"items":[`)
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			Pod(&b, r, i)
		}
		b.WriteString(`]}`)
		chunks = append(chunks, []byte(b.String()))
	}
	return chunks
}

// Items returns n pods, each as its own JSON object, generated from seed.
// Callers assemble lists of any chunk size from them.
func Items(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 42))
	items := make([][]byte, n)
	var b strings.Builder
	for i := range n {
		b.Reset()
		Pod(&b, r, i)
		items[i] = []byte(b.String())
	}
	return items
}

// AppendList appends a PodList holding items to dst. A non-empty cont is
// set as metadata.continue with remaining as metadata.remainingItemCount,
// as the apiserver does for a chunk that is not the last.
func AppendList(dst []byte, items [][]byte, cont string, remaining int) []byte {
	dst = append(dst, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"987654321"`...)
	if cont != "" {
		dst = fmt.Appendf(dst, `,"continue":%q,"remainingItemCount":%d`, cont, remaining)
	}
	dst = append(dst, `},"items":[`...)
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it...)
	}
	return append(dst, "]}"...)
}
