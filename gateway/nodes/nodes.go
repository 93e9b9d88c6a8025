// Package nodes is the console's view of a cluster's nodes and the node
// operations Berth offers: list, detail, cordon, uncordon and drain. Every
// call goes to the cluster as the caller, through the proxy's connection,
// so the cluster's RBAC decides what each person may do.
package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/kubestatus"
)

// Caller makes one API request to a cluster as a principal; the cluster
// registry implements it.
type Caller interface {
	Call(p *identity.Principal, cluster, method, path, contentType string, body []byte) (int, []byte, error)
}

// ErrNotFound answers for a cluster the caller may not see, as for one
// that does not exist.
var ErrNotFound = fault.New(fault.NotFound, "not found")

// Node is a node as the console shows it.
type Node struct {
	// Cluster is set in the fleet's node list (GET /api/v1/nodes).
	Cluster       string   `json:"cluster,omitempty"`
	Name          string   `json:"name"`
	Ready         bool     `json:"ready"`
	Unschedulable bool     `json:"unschedulable"`
	Roles         []string `json:"roles"`
	// Status is the Ready condition as the console words it: Ready,
	// NotReady (False), Unknown (the kubelet stopped reporting), or ""
	// before any kubelet reported.
	Status                  string            `json:"status"`
	KubeletVersion          string            `json:"kubelet_version,omitempty"`
	ContainerRuntimeVersion string            `json:"container_runtime_version,omitempty"`
	KernelVersion           string            `json:"kernel_version,omitempty"`
	InternalIP              string            `json:"internal_ip,omitempty"`
	Addresses               []Address         `json:"addresses"`
	OSImage                 string            `json:"os_image,omitempty"`
	Labels                  map[string]string `json:"labels,omitempty"`
	CreatedAt               time.Time         `json:"created_at"`
}

// Address is one of a node's addresses (InternalIP, ExternalIP, Hostname).
type Address struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// k8sNode is the part of a Kubernetes Node Berth reads.
type k8sNode struct {
	Metadata struct {
		Name              string            `json:"name"`
		Labels            map[string]string `json:"labels"`
		CreationTimestamp time.Time         `json:"creationTimestamp"`
	} `json:"metadata"`
	Spec struct {
		Unschedulable bool `json:"unschedulable"`
	} `json:"spec"`
	Status struct {
		Conditions []struct{ Type, Status string }  `json:"conditions"`
		Addresses  []struct{ Type, Address string } `json:"addresses"`
		NodeInfo   struct {
			KubeletVersion          string `json:"kubeletVersion"`
			OSImage                 string `json:"osImage"`
			ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
			KernelVersion           string `json:"kernelVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

func (n *k8sNode) view() Node {
	v := Node{Name: n.Metadata.Name, Unschedulable: n.Spec.Unschedulable, Labels: n.Metadata.Labels,
		KubeletVersion: n.Status.NodeInfo.KubeletVersion, OSImage: n.Status.NodeInfo.OSImage,
		ContainerRuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion, KernelVersion: n.Status.NodeInfo.KernelVersion,
		CreatedAt: n.Metadata.CreationTimestamp, Roles: []string{}, Addresses: []Address{}}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			v.Ready = c.Status == "True"
			v.Status = map[string]string{"True": "Ready", "False": "NotReady", "Unknown": "Unknown"}[c.Status]
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" && v.InternalIP == "" {
			v.InternalIP = a.Address
		}
		v.Addresses = append(v.Addresses, Address{Type: a.Type, Address: a.Address})
	}
	for k := range n.Metadata.Labels {
		if role, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && role != "" {
			v.Roles = append(v.Roles, role)
		}
	}
	return v
}

// Service runs node operations.
type Service struct {
	c Caller
}

// NewService makes the service.
func NewService(c Caller) *Service { return &Service{c: c} }

// call sends one request and decodes a 2xx JSON answer into out (when not
// nil). A refusal is the cluster's own StatusError as a fault
// (kubestatus.Fault): its 403 is the caller's, with the cluster's message.
func (s *Service) call(p *identity.Principal, cluster, method, path, ct string, body []byte, out any) error {
	code, data, err := s.c.Call(p, cluster, method, path, ct, body)
	if err == nil {
		err = kubestatus.Error(method, code, data)
	}
	if err != nil {
		return kubestatus.Fault(err, method+" "+path)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fault.Wrap(fault.BadGateway, err, "%s %s: the cluster's answer is not the JSON expected", method, path)
		}
	}
	return nil
}

// List returns the cluster's nodes.
func (s *Service) List(p *identity.Principal, cluster string) ([]Node, error) {
	var list struct{ Items []k8sNode }
	if err := s.call(p, cluster, http.MethodGet, "/api/v1/nodes", "", nil, &list); err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, list.Items[i].view())
	}
	return out, nil
}

// Get returns one node.
func (s *Service) Get(p *identity.Principal, cluster, name string) (*Node, error) {
	var n k8sNode
	if err := s.call(p, cluster, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), "", nil, &n); err != nil {
		return nil, err
	}
	v := n.view()
	return &v, nil
}

// SetUnschedulable cordons (true) or uncordons (false) a node.
func (s *Service) SetUnschedulable(p *identity.Principal, cluster, name string, on bool) (*Node, error) {
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
	var n k8sNode
	if err := s.call(p, cluster, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(name), "application/strategic-merge-patch+json", []byte(patch), &n); err != nil {
		return nil, err
	}
	v := n.view()
	return &v, nil
}

// DrainResult says what a drain did.
type DrainResult struct {
	Evicted []string `json:"evicted"`
	Skipped []string `json:"skipped"`
}

type pod struct {
	Metadata struct {
		Name            string                  `json:"name"`
		Namespace       string                  `json:"namespace"`
		Annotations     map[string]string       `json:"annotations"`
		OwnerReferences []struct{ Kind string } `json:"ownerReferences"`
	} `json:"metadata"`
}

func (p *pod) key() string { return p.Metadata.Namespace + "/" + p.Metadata.Name }

// skip says why a pod stays on a drained node, as kubectl drain decides:
// DaemonSet pods would be recreated there, mirror pods belong to the kubelet.
func (p *pod) skip() string {
	if _, ok := p.Metadata.Annotations["kubernetes.io/config.mirror"]; ok {
		return "mirror pod"
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return "DaemonSet pod"
		}
	}
	return ""
}

// Drain cordons the node, then evicts its pods through the Eviction API
// (so PodDisruptionBudgets are honoured: an eviction they refuse with 429
// is retried) until the node holds only pods a drain leaves, or timeout
// (a GatewayTimeout fault). The timeout is a timer, not a clock reading:
// it bounds real waiting.
func (s *Service) Drain(ctx context.Context, p *identity.Principal, cluster, name string, timeout time.Duration) (*DrainResult, error) {
	if _, err := s.SetUnschedulable(p, cluster, name, true); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	res := &DrainResult{Evicted: []string{}, Skipped: []string{}}
	evicted := map[string]bool{}
	for {
		var list struct{ Items []pod }
		q := url.Values{"fieldSelector": {"spec.nodeName=" + name}}
		if err := s.call(p, cluster, http.MethodGet, "/api/v1/pods?"+q.Encode(), "", nil, &list); err != nil {
			return res, err
		}
		remaining := 0
		res.Skipped = res.Skipped[:0]
		for i := range list.Items {
			po := &list.Items[i]
			if why := po.skip(); why != "" {
				res.Skipped = append(res.Skipped, po.key()+" ("+why+")")
				continue
			}
			remaining++
			body := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, po.Metadata.Name, po.Metadata.Namespace)
			path := "/api/v1/namespaces/" + url.PathEscape(po.Metadata.Namespace) + "/pods/" + url.PathEscape(po.Metadata.Name) + "/eviction"
			err := s.call(p, cluster, http.MethodPost, path, "application/json", []byte(body), nil)
			switch {
			case err == nil || apierrors.IsNotFound(err):
				if !evicted[po.key()] {
					evicted[po.key()] = true
					res.Evicted = append(res.Evicted, po.key())
				}
			case apierrors.IsTooManyRequests(err):
				// A PodDisruptionBudget says not now: try again below.
			default:
				return res, err
			}
		}
		if remaining == 0 {
			return res, nil
		}
		select {
		case <-deadline.C:
			return res, fault.New(fault.GatewayTimeout, "drain timed out: %d pods still on %s after %s", remaining, name, timeout)
		default:
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
