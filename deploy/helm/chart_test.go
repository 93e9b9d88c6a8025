package helm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/gateway/config"
)

const (
	release   = "edge"
	namespace = "berth-test"
	fullname  = "edge-berth"
	// A key in the format Berth wants (64 hex characters), and a password:
	// the ConfigMap must contain neither.
	testSecretKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testPassword  = "correct-horse-battery-staple"
)

// object is one rendered manifest.
type object struct {
	Kind string
	Name string
	Raw  map[string]any
}

type rendering struct {
	YAML    string
	Objects []object
}

// find returns the object of that kind and name, failing the test if absent.
func (r rendering) find(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered; got %v", kind, name, r.kinds())
	return object{}
}

// kinds lists "Kind/name" of every object, sorted.
func (r rendering) kinds() []string {
	var ks []string
	for _, o := range r.Objects {
		ks = append(ks, o.Kind+"/"+o.Name)
	}
	slices.Sort(ks)
	return ks
}

// decode converts an object into its typed API struct through JSON, as the
// API server would read it.
func decode[T any](t *testing.T, o object) *T {
	t.Helper()
	data, err := json.Marshal(o.Raw)
	if err != nil {
		t.Fatal(err)
	}
	v := new(T)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s %s does not decode as %T: %v", o.Kind, o.Name, v, err)
	}
	return v
}

// helmTemplate runs helm template on the chart with the release name and
// namespace above, at the e2e cluster's Kubernetes version.
func helmTemplate(t *testing.T, args ...string) (rendering, error) {
	t.Helper()
	full := append([]string{"template", release, ChartDir(), "--namespace", namespace, "--kube-version", kubeenv.Version}, args...)
	out, err := runHelm(t, full...)
	if err != nil {
		return rendering{}, err
	}
	r := rendering{YAML: out}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output is not YAML: %v\n%s", err, out)
		}
		if m == nil {
			continue
		}
		kind, _ := m["kind"].(string)
		meta, _ := m["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		if ns, _ := meta["namespace"].(string); ns != namespace && kind != "CustomResourceDefinition" {
			t.Errorf("%s %s: namespace %q, want %q", kind, name, ns, namespace)
		}
		r.Objects = append(r.Objects, object{Kind: kind, Name: name, Raw: m})
	}
	return r, nil
}

func mustTemplate(t *testing.T, args ...string) rendering {
	t.Helper()
	r, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	// A private Helm home: no repositories, plugins or caches of the user.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String()+stdout.String())
	}
	return stdout.String(), nil
}

func etcdValues() string { return filepath.Join("testdata", "values-etcd.yaml") }

// etcdArgs renders etcd mode with everything on (testdata/values-etcd.yaml)
// on a cluster that serves ServiceMonitor.
func etcdArgs() []string {
	return []string{"-f", etcdValues(), "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"}
}

func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ToolsDir(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := "require helm.sh/helm/v4 " + Version
	if !strings.Contains(string(data), want+"\n") {
		t.Fatalf("tool/go.mod does not say %q: Version and the tools module disagree", want)
	}
}

func TestLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", etcdValues()}} {
		out, err := runHelm(t, append([]string{"lint", "--strict", ChartDir()}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Fatalf("helm lint %v:\n%s", args, out)
		}
		t.Logf("helm lint --strict %v: ok", args)
	}
}

// checkPod asserts what both modes share: the hardening, the probes, the
// command line, the configuration mount and the store backend variable.
func checkPod(t *testing.T, r rendering, spec corev1.PodTemplateSpec, backend string) {
	t.Helper()
	ps := spec.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false")
	}
	sc := ps.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532 ||
		sc.FSGroup == nil || *sc.FSGroup != 65532 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v", sc)
	}
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds <= 30 {
		t.Error("terminationGracePeriodSeconds must exceed Berth's shutdown_timeout (30s)")
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	cs := c.SecurityContext
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot ||
		cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) != 0 {
		t.Errorf("container securityContext: %+v", cs)
	}
	cmd := append(slices.Clone(c.Command), c.Args...)
	if want := []string{"/usr/local/bin/berth", "serve", "--config", "/etc/berth/berth.yaml"}; !slices.Equal(cmd, want) {
		t.Errorf("command %q, want %q", cmd, want)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" ||
			(p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s probe: %+v, want GET %s on the plain-HTTP port", p.name, p.probe, p.path)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["https"] != 8443 {
		t.Errorf("container ports %v, want http 8080 and https 8443", ports)
	}
	if got := envValue(c, "BERTH_STORE_BACKEND"); got != backend {
		t.Errorf("BERTH_STORE_BACKEND=%q, want %q", got, backend)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	cfg, ok := mounts["/etc/berth"]
	if !ok || !cfg.ReadOnly || volume(t, ps, cfg.Name).ConfigMap == nil || volume(t, ps, cfg.Name).ConfigMap.Name != fullname {
		t.Errorf("/etc/berth is not the ConfigMap %s mounted read-only: %+v", fullname, cfg)
	}
	if tmp, ok := mounts["/tmp"]; !ok || volume(t, ps, tmp.Name).EmptyDir == nil {
		t.Error("no writable /tmp (emptyDir): plugins put their sockets there")
	}
	if _, ok := mounts["/var/lib/berth"]; !ok {
		t.Error("nothing mounted at the data directory /var/lib/berth")
	}
	if spec.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a changed ConfigMap would not roll the pods")
	}
	// The ServiceAccount the pods use exists and mounts no token either.
	sa := decode[corev1.ServiceAccount](t, r.find(t, "ServiceAccount", ps.ServiceAccountName))
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount does not set automountServiceAccountToken: false")
	}
	checkConfig(t, r, c)
}

// checkConfig loads the rendered berth.yaml with Berth's own configuration
// loader and the container's plain environment variables, as `berth serve`
// would, and checks the keys the chart owns.
func checkConfig(t *testing.T, r rendering, c corev1.Container) {
	t.Helper()
	cm := decode[corev1.ConfigMap](t, r.find(t, "ConfigMap", fullname))
	text, ok := cm.Data["berth.yaml"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("ConfigMap data keys %v, want only berth.yaml", cm.Data)
	}
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.Name == "BERTH_SECRET_KEY":
			// The value lives in a Secret; a stand-in of the right shape
			// lets the loader check the rest (etcd mode requires one).
			env[e.Name] = strings.Repeat("ab", 32)
		case e.ValueFrom != nil, strings.HasPrefix(e.Name, "BERTH_STORE_ETCD_TLS_"):
			// Other values from Secrets are not known here, and the etcd
			// TLS files exist only in the pod.
		default:
			env[e.Name] = e.Value
		}
	}
	cfg, err := config.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("Berth refuses the rendered configuration: %v\n%s", err, text)
	}
	if cfg.DataDir != "/var/lib/berth" || cfg.HTTP.Addr != "0.0.0.0:8080" || cfg.HTTPS.Addr != "0.0.0.0:8443" {
		t.Errorf("data_dir %q, http.addr %q, https.addr %q; want /var/lib/berth, 0.0.0.0:8080, 0.0.0.0:8443", cfg.DataDir, cfg.HTTP.Addr, cfg.HTTPS.Addr)
	}
	if strings.Contains(text, "secret_key") || strings.Contains(text, "admin_password") {
		t.Errorf("the ConfigMap names a secret:\n%s", text)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func volume(t *testing.T, ps corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range ps.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func TestRenderBadger(t *testing.T) {
	r := mustTemplate(t)
	want := []string{
		"ConfigMap/" + fullname, "Service/" + fullname, "Service/" + fullname + "-headless",
		"ServiceAccount/" + fullname, "StatefulSet/" + fullname,
	}
	if got := r.kinds(); !slices.Equal(got, want) {
		t.Fatalf("Badger mode rendered %v, want %v", got, want)
	}
	sts := decode[appsv1.StatefulSet](t, r.find(t, "StatefulSet", fullname))
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", sts.Spec.Replicas)
	}
	if sts.Spec.ServiceName != fullname+"-headless" {
		t.Errorf("serviceName %q", sts.Spec.ServiceName)
	}
	checkPod(t, r, sts.Spec.Template, "badger")
	c := sts.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "BERTH_STORE_ETCD_") || e.Name == "BERTH_SECRET_KEY" {
			t.Errorf("Badger mode sets %s", e.Name)
		}
	}
	// The data directory is the claim from volumeClaimTemplates, not a
	// volume of the pod.
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%d volumeClaimTemplates, want 1", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if pvc.Name != "data" || pvc.Spec.Resources.Requests.Storage().String() != "10Gi" ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("volume claim: %+v", pvc)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/var/lib/berth" && m.Name != "data" {
			t.Errorf("/var/lib/berth is volume %q, not the claim", m.Name)
		}
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			t.Error("the pod has a volume named data, which would hide the claim")
		}
	}
	if sts.Spec.Template.Spec.Affinity != nil {
		t.Error("one replica needs no anti-affinity")
	}
	svc := decode[corev1.Service](t, r.find(t, "Service", fullname))
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
		if p.TargetPort.String() != p.Name {
			t.Errorf("service port %s targets %s", p.Name, p.TargetPort.String())
		}
	}
	if ports["http"] != 8080 || ports["https"] != 8443 {
		t.Errorf("service ports %v", ports)
	}
	t.Logf("Badger mode: %v", r.kinds())
}

func TestRenderBadgerRefusesReplicas(t *testing.T) {
	_, err := helmTemplate(t, "--set", "replicas=2")
	if err == nil || !strings.Contains(err.Error(), "a Badger store belongs to one process") {
		t.Fatalf("replicas=2 with Badger: %v, want a refusal", err)
	}
}

func TestRenderEtcd(t *testing.T) {
	r := mustTemplate(t, etcdArgs()...)
	want := []string{
		"ConfigMap/" + fullname, "Deployment/" + fullname, "Ingress/" + fullname,
		"PodDisruptionBudget/" + fullname, "Service/" + fullname, "ServiceAccount/" + fullname,
		"ServiceMonitor/" + fullname,
	}
	if got := r.kinds(); !slices.Equal(got, want) {
		t.Fatalf("etcd mode rendered %v, want %v", got, want)
	}
	dep := decode[appsv1.Deployment](t, r.find(t, "Deployment", fullname))
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v: a rollout must not take a replica away before its replacement is ready", ru)
	}
	checkPod(t, r, dep.Spec.Template, "etcd")
	ps := dep.Spec.Template.Spec
	c := ps.Containers[0]
	wantEnv := map[string]string{
		"BERTH_STORE_ETCD_ENDPOINTS":     "https://etcd-0.etcd.db.svc:2379,https://etcd-1.etcd.db.svc:2379,https://etcd-2.etcd.db.svc:2379",
		"BERTH_STORE_ETCD_PREFIX":        "/berth/prod/",
		"BERTH_STORE_ETCD_TLS_CA_FILE":   "/etc/berth-etcd-tls/ca.crt",
		"BERTH_STORE_ETCD_TLS_CERT_FILE": "/etc/berth-etcd-tls/tls.crt",
		"BERTH_STORE_ETCD_TLS_KEY_FILE":  "/etc/berth-etcd-tls/tls.key",
	}
	for k, v := range wantEnv {
		if got := envValue(c, k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	// Every replica must have the key: the reference is not optional.
	sk := envVar(c, "BERTH_SECRET_KEY")
	if sk == nil || sk.ValueFrom == nil || sk.ValueFrom.SecretKeyRef == nil || sk.ValueFrom.SecretKeyRef.Name != "berth-secrets" ||
		sk.ValueFrom.SecretKeyRef.Optional == nil || *sk.ValueFrom.SecretKeyRef.Optional {
		t.Errorf("BERTH_SECRET_KEY: %+v, want a required reference to the Secret berth-secrets", sk)
	}
	if ap := envVar(c, "BERTH_ADMIN_PASSWORD"); ap == nil || ap.ValueFrom == nil || ap.ValueFrom.SecretKeyRef == nil {
		t.Errorf("BERTH_ADMIN_PASSWORD: %+v, want a reference to a Secret", ap)
	}
	// The TLS files are where the variables say, from the Secret.
	var tlsMount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == "/etc/berth-etcd-tls" {
			tlsMount = &c.VolumeMounts[i]
		}
		if m.MountPath == "/var/lib/berth" && volume(t, ps, m.Name).EmptyDir == nil {
			t.Error("with etcd the data directory should be an emptyDir (it holds only the admin socket and the lock)")
		}
	}
	if tlsMount == nil || !tlsMount.ReadOnly {
		t.Fatalf("etcd client TLS not mounted read-only at /etc/berth-etcd-tls")
	}
	if sec := volume(t, ps, tlsMount.Name).Secret; sec == nil || sec.SecretName != "berth-etcd-client" || len(sec.Items) != 3 {
		t.Errorf("etcd TLS volume: %+v", sec)
	}
	// Replicas prefer different nodes; the spread constraint got the labels.
	aff := ps.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("affinity %+v, want a preferred pod anti-affinity", aff)
	}
	term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != "kubernetes.io/hostname" || !matches(term.LabelSelector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("anti-affinity term %+v does not select the pods", term)
	}
	if len(ps.TopologySpreadConstraints) != 1 || ps.TopologySpreadConstraints[0].LabelSelector == nil ||
		!matches(ps.TopologySpreadConstraints[0].LabelSelector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("topologySpreadConstraints %+v", ps.TopologySpreadConstraints)
	}
	pdb := decode[policyv1.PodDisruptionBudget](t, r.find(t, "PodDisruptionBudget", fullname))
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || !matches(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	ing := decode[networkingv1.Ingress](t, r.find(t, "Ingress", fullname))
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "berth.example.com" || ing.Spec.Rules[0].HTTP == nil ||
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != fullname || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name != "https" {
		t.Errorf("Ingress rules %+v", ing.Spec.Rules)
	}
	sm := r.find(t, "ServiceMonitor", fullname).Raw
	ep := sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	cred := ep["authorization"].(map[string]any)["credentials"].(map[string]any)
	if ep["path"] != "/metrics" || ep["port"] != "https" || cred["name"] != "berth-metrics-key" {
		t.Errorf("ServiceMonitor endpoint %v", ep)
	}
	cm := decode[corev1.ConfigMap](t, r.find(t, "ConfigMap", fullname))
	if !strings.Contains(cm.Data["berth.yaml"], "public_url: https://berth.example.com") {
		t.Errorf("config values not in berth.yaml:\n%s", cm.Data["berth.yaml"])
	}
	t.Logf("etcd mode: %v", r.kinds())
}

// matches reports whether every label of sel is on the pod.
func matches(sel, pod map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if pod[k] != v {
			return false
		}
	}
	return true
}

func TestRenderEtcdVariants(t *testing.T) {
	// Hard anti-affinity.
	r := mustTemplate(t, append(etcdArgs(), "--set", "podAntiAffinity=hard")...)
	dep := decode[appsv1.Deployment](t, r.find(t, "Deployment", fullname))
	if a := dep.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("podAntiAffinity=hard: affinity %+v", a)
	}
	// No ServiceMonitor when the cluster does not serve the kind.
	r = mustTemplate(t, "-f", etcdValues())
	for _, o := range r.Objects {
		if o.Kind == "ServiceMonitor" {
			t.Error("ServiceMonitor rendered for a cluster without monitoring.coreos.com/v1")
		}
	}
	// replicas defaults to 3 with etcd.
	r = mustTemplate(t, "-f", etcdValues(), "--set", "replicas=null")
	if dep := decode[appsv1.Deployment](t, r.find(t, "Deployment", fullname)); *dep.Spec.Replicas != 3 {
		t.Errorf("default replicas with etcd: %d, want 3", *dep.Spec.Replicas)
	}
}

func TestRenderEtcdNeedsSecretKey(t *testing.T) {
	_, err := helmTemplate(t, "--set", "store.backend=etcd", "--set", "store.etcd.endpoints={http://etcd:2379}")
	const want = "secrets.secretKey or secrets.existingSecret is required with store.backend=etcd"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("etcd mode without a secret key: %v, want an error saying %q", err, want)
	}
	_, err = helmTemplate(t, "--set", "store.backend=etcd", "--set", "secrets.secretKey="+testSecretKey)
	if err == nil || !strings.Contains(err.Error(), "store.etcd.endpoints is required") {
		t.Fatalf("etcd mode without endpoints: %v", err)
	}
	t.Logf("etcd mode without secrets.secretKey/existingSecret fails with: %q", want)
}

// TestSecretsStayOutOfConfigMap gives the secrets as values: they go to a
// Secret the chart makes, never to the ConfigMap, and putting them under
// config is refused.
func TestSecretsStayOutOfConfigMap(t *testing.T) {
	r := mustTemplate(t, "--set", "secrets.secretKey="+testSecretKey, "--set", "secrets.adminPassword="+testPassword)
	cm := decode[corev1.ConfigMap](t, r.find(t, "ConfigMap", fullname))
	for _, s := range []string{testSecretKey, testPassword} {
		if strings.Contains(cm.Data["berth.yaml"], s) {
			t.Errorf("the ConfigMap contains a secret value %q", s)
		}
	}
	sec := decode[corev1.Secret](t, r.find(t, "Secret", fullname))
	if string(sec.Data["BERTH_SECRET_KEY"]) != testSecretKey || string(sec.Data["BERTH_ADMIN_PASSWORD"]) != testPassword {
		t.Errorf("Secret data %v", sec.Data)
	}
	if strings.Contains(r.YAML, testPassword) || !strings.Contains(r.YAML, base64.StdEncoding.EncodeToString([]byte(testPassword))) {
		t.Error("the password should appear only base64-encoded, in the Secret")
	}
	sts := decode[appsv1.StatefulSet](t, r.find(t, "StatefulSet", fullname))
	for k := range sts.Spec.Template.Annotations {
		if strings.Contains(k, "secret") {
			t.Errorf("pod annotation %s: a hash over the Secret can be brute-forced for a weak password", k)
		}
	}
	sk := envVar(sts.Spec.Template.Spec.Containers[0], "BERTH_SECRET_KEY")
	if sk == nil || sk.ValueFrom == nil || sk.ValueFrom.SecretKeyRef == nil || sk.ValueFrom.SecretKeyRef.Name != fullname {
		t.Errorf("BERTH_SECRET_KEY %+v, want a reference to the chart's Secret", sk)
	}
	for _, key := range []string{"secret_key", "admin_password"} {
		_, err := helmTemplate(t, "--set", "config."+key+"=x")
		if err == nil || !strings.Contains(err.Error(), "config."+key+" must not be set") {
			t.Errorf("config.%s: %v, want a refusal", key, err)
		}
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		path string
	}{
		{[]string{"--set-string", "replicas=three"}, "replicas"},
		{[]string{"--set", "store.backend=mysql"}, "backend"},
		{[]string{"--set", "secrets.secretKey=too-short"}, "secretKey"},
		{[]string{"--set", "containerPorts.http=80"}, "http"},
		{[]string{"--set", "store.etcd.endpoints={etcd:2379}"}, "endpoints"},
		{[]string{"--set", "podAntiAffinity=always"}, "podAntiAffinity"},
		{[]string{"--set", "replicaCount=3"}, "replicaCount"},
	} {
		_, err := helmTemplate(t, tc.args...)
		if err == nil {
			t.Errorf("%v: rendered, want the schema to refuse it", tc.args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "schema") || !strings.Contains(msg, tc.path) {
			t.Errorf("%v: error does not name the schema and %q: %v", tc.args, tc.path, msg)
			continue
		}
		t.Logf("%v refused by values.schema.json", tc.args)
	}
}

// TestDryRunServer applies each rendering to the real e2e kube-apiserver
// with kubectl apply --dry-run=server --validate=strict: the objects pass
// the API server's validation and admission, and no field is unknown.
func TestDryRunServer(t *testing.T) {
	badger := mustTemplate(t)
	// With the Secret the chart makes from values.
	withSecret := mustTemplate(t, "--set", "secrets.secretKey="+testSecretKey, "--set", "secrets.adminPassword="+testPassword)
	etcd := mustTemplate(t, etcdArgs()...)
	env := kubeenv.ForTest(t, kubeenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := env.Kubectl(ctx, "create", "namespace", namespace); err != nil {
		t.Fatal(err)
	}
	// The cluster has no prometheus-operator: install a minimal
	// ServiceMonitor CRD (testdata) so the ServiceMonitor is checked too.
	crd, err := filepath.Abs(filepath.Join("testdata", "servicemonitor-crd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kubectl(ctx, "apply", "-f", crd); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    rendering
	}{{"badger", badger}, {"badger+secret", withSecret}, {"etcd", etcd}} {
		path := filepath.Join(t.TempDir(), "rendering.yaml")
		if err := os.WriteFile(path, []byte(tc.r.YAML), 0o600); err != nil {
			t.Fatal(err)
		}
		// Discovery of the new CRD can lag its Established condition.
		var out []byte
		for attempt := 0; ; attempt++ {
			out, err = env.Kubectl(ctx, "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", path)
			if err == nil || attempt == 10 || !strings.Contains(err.Error(), "no matches for kind") {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("%s mode: %v", tc.name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, l := range lines {
			if !strings.HasSuffix(l, "(server dry run)") {
				t.Errorf("%s mode: unexpected kubectl line %q", tc.name, l)
			}
		}
		if len(lines) != len(tc.r.Objects) {
			t.Errorf("%s mode: kubectl applied %d objects, the chart rendered %d:\n%s", tc.name, len(lines), len(tc.r.Objects), out)
		}
		t.Logf("%s mode: %d objects accepted by kube-apiserver %s (dry run): %v", tc.name, len(lines), kubeenv.Version, tc.r.kinds())
	}
}

// TestNotes renders NOTES.txt (helm template leaves it out) through a
// client-side install dry run, which needs no cluster.
func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		want, notWant []string
	}{
		{nil, []string{"rollout status statefulset/" + fullname, "WARNING: config.public_url is empty", "secret.key on the volume"}, nil},
		{[]string{"-f", etcdValues()}, []string{"3 replicas (Deployment) on etcd https://etcd-0.etcd.db.svc:2379", "rollout status deployment/" + fullname, "https://berth.example.com/", "Secret berth-secrets",
			// The dry run knows no cluster, hence no ServiceMonitor kind.
			"this cluster has no\nmonitoring.coreos.com/v1 ServiceMonitor"},
			[]string{"public_url is empty", "secret.key"}},
	} {
		out, err := runHelm(t, append([]string{"install", release, ChartDir(), "--namespace", namespace, "--dry-run=client"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		_, notes, ok := strings.Cut(out, "NOTES:\n")
		if !ok {
			t.Fatalf("no NOTES in:\n%s", out)
		}
		for _, w := range tc.want {
			if !strings.Contains(notes, w) {
				t.Errorf("%v: NOTES lack %q:\n%s", tc.args, w, notes)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(notes, w) {
				t.Errorf("%v: NOTES contain %q:\n%s", tc.args, w, notes)
			}
		}
	}
}
