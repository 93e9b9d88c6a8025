package config

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Provisioning configures cluster lifecycle: which Provisioner plugin
// creates clusters, how their operations run, and what each user may
// create.
type Provisioning struct {
	// Provisioner is the name of the plugin (in plugins.instances) that
	// creates clusters when a request names none; empty means requests
	// must name one.
	Provisioner string `yaml:"provisioner"`
	// Workers is how many operations run at once.
	Workers int `yaml:"workers"`
	// OperationTimeout bounds one operation from its start to its end.
	OperationTimeout Duration `yaml:"operation_timeout"`
	// MaxAttempts is how often an operation's work is started before a
	// retryable failure becomes final.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryMin and RetryMax bound the jittered, doubling delay between
	// attempts.
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// Retention is how long finished operations are kept.
	Retention Duration `yaml:"retention"`
	Quota     Quota    `yaml:"quota"`
}

// Quota limits what one user may create through provisioning. Zero or
// empty means no limit.
type Quota struct {
	MaxClusters int `yaml:"max_clusters"`
	// MaxCPU and MaxMemory are Kubernetes quantities ("32", "500m",
	// "128Gi"), summed over the control plane and workers of every
	// cluster the user created that is not deleted.
	MaxCPU    string `yaml:"max_cpu"`
	MaxMemory string `yaml:"max_memory"`
}

// CPUMillicores returns MaxCPU in thousandths of a core; 0 means no limit.
func (q Quota) CPUMillicores() int64 { return quantity(q.MaxCPU).MilliValue() }

// MemoryBytes returns MaxMemory in bytes; 0 means no limit.
func (q Quota) MemoryBytes() int64 { return quantity(q.MaxMemory).Value() }

func quantity(s string) *resource.Quantity {
	if s == "" {
		return resource.NewQuantity(0, resource.DecimalSI)
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		// validate refused it already.
		return resource.NewQuantity(0, resource.DecimalSI)
	}
	return &q
}

func (p *Provisioning) validate() error {
	if p.Provisioner != "" && !pluginNameRE.MatchString(p.Provisioner) {
		return &Error{"provisioning.provisioner", fmt.Sprintf("%q is not a plugin name", p.Provisioner)}
	}
	if p.Workers < 1 || p.Workers > 64 {
		return &Error{"provisioning.workers", "must be from 1 to 64"}
	}
	if p.MaxAttempts < 1 {
		return &Error{"provisioning.max_attempts", "must be at least 1"}
	}
	for _, d := range []struct {
		key string
		v   Duration
		min time.Duration
	}{
		{"provisioning.operation_timeout", p.OperationTimeout, time.Minute},
		{"provisioning.retry_min", p.RetryMin, 10 * time.Millisecond},
		{"provisioning.retry_max", p.RetryMax, 10 * time.Millisecond},
		{"provisioning.retention", p.Retention, time.Hour},
	} {
		if d.v.D() < d.min {
			return &Error{d.key, fmt.Sprintf("must be at least %s", d.min)}
		}
	}
	if p.RetryMax < p.RetryMin {
		return &Error{"provisioning.retry_max", "must not be less than retry_min"}
	}
	if p.Quota.MaxClusters < 0 {
		return &Error{"provisioning.quota.max_clusters", "must not be negative"}
	}
	for key, s := range map[string]string{"provisioning.quota.max_cpu": p.Quota.MaxCPU, "provisioning.quota.max_memory": p.Quota.MaxMemory} {
		if s == "" {
			continue
		}
		q, err := resource.ParseQuantity(s)
		if err != nil || q.Sign() < 0 {
			return &Error{key, fmt.Sprintf("%q is not a quantity (e.g. \"32\", \"500m\", \"128Gi\")", s)}
		}
	}
	return nil
}

// checkProvisioner refuses a default provisioner that names no configured
// plugin, or one declared without the provisioner capability: every
// create would otherwise fail at request time instead of at start.
func (c *Config) checkProvisioner() error {
	name := c.Provisioning.Provisioner
	if name == "" {
		return nil
	}
	for _, p := range c.Plugins.Instances {
		if p.Name != name {
			continue
		}
		if len(p.Capabilities) > 0 && !slices.Contains(p.Capabilities, "provisioner") {
			return &Error{"provisioning.provisioner", fmt.Sprintf("plugin %q is not declared with the provisioner capability", name)}
		}
		return nil
	}
	return &Error{"provisioning.provisioner", fmt.Sprintf("no plugin named %q in plugins.instances", name)}
}
