package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/berthgw/berth/sdk"
)

// clusterName is a DNS label: the name becomes a directory, an etcd member
// name and a kubeconfig context, so it must be safe in all three.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

const maxNameLen = 40

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("cluster name is required: %w", sdk.ErrInvalidArgument)
	}
	if len(name) > maxNameLen || !clusterName.MatchString(name) {
		return fmt.Errorf("cluster name %q must be a DNS label (lower-case letters, digits and '-') of at most %d characters: %w", name, maxNameLen, sdk.ErrInvalidArgument)
	}
	return nil
}

// normalizeSpec checks a requested spec against what this host can run and
// fills in the Kubernetes version, so that two requests for the same
// cluster compare equal however they spelled the version.
func normalizeSpec(spec sdk.ClusterSpec, binaryVersion string) (sdk.ClusterSpec, error) {
	if err := checkName(spec.Name); err != nil {
		return spec, err
	}
	if len(spec.Options) > 0 {
		// A typo'd option must not pass silently, and this plugin has none.
		return spec, fmt.Errorf("provisioner-local takes no options, got %s: %w", strings.Join(slices.Sorted(maps.Keys(spec.Options)), ", "), sdk.ErrInvalidArgument)
	}
	spec.Options = nil
	if !versionMatches(spec.KubernetesVersion, binaryVersion) {
		return spec, fmt.Errorf("kubernetes version %q: this host runs kube-apiserver %s only: %w", spec.KubernetesVersion, binaryVersion, sdk.ErrInvalidArgument)
	}
	spec.KubernetesVersion = binaryVersion
	if spec.ControlPlane.CPUMillicores < 0 || spec.ControlPlane.MemoryBytes < 0 || spec.Workers.CPUMillicores < 0 || spec.Workers.MemoryBytes < 0 {
		return spec, fmt.Errorf("resources must not be negative: %w", sdk.ErrInvalidArgument)
	}
	return spec, nil
}

// versionMatches reports whether want ("", "1.31", "v1.31.14") names
// have, component by component.
func versionMatches(want, have string) bool {
	if want == "" {
		return true
	}
	w := strings.Split(strings.TrimPrefix(want, "v"), ".")
	h := strings.Split(strings.TrimPrefix(have, "v"), ".")
	return len(w) <= len(h) && slices.Equal(w, h[:len(w)])
}

// sameSpec compares two normalized specs.
func sameSpec(a, b sdk.ClusterSpec) bool {
	return a.Name == b.Name && a.KubernetesVersion == b.KubernetesVersion &&
		a.ControlPlane == b.ControlPlane && a.Workers == b.Workers && maps.Equal(a.Options, b.Options)
}
