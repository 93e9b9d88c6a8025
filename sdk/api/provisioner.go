package api

import (
	"context"
	"time"
)

// Provisioner creates and manages Kubernetes clusters. Create, Update and
// Delete start long work and return at once with an Operation the host
// polls (GetOperation) or watches (WatchOperation).
//
// A Provisioner may also implement OperationWatcher (to push progress
// instead of being polled) and JoinMaterialProvider (node joins).
type Provisioner interface {
	CreateCluster(ctx context.Context, req CreateClusterRequest) (Operation, error)
	UpdateCluster(ctx context.Context, req UpdateClusterRequest) (Operation, error)
	// GetCluster returns sdk.ErrNotFound for an unknown cluster.
	GetCluster(ctx context.Context, name string) (Cluster, error)
	ListClusters(ctx context.Context) ([]Cluster, error)
	DeleteCluster(ctx context.Context, req DeleteClusterRequest) (Operation, error)
	// GetOperation returns sdk.ErrNotFound for an unknown operation.
	GetOperation(ctx context.Context, id string) (Operation, error)
	// GetConnection returns how to reach a ready cluster, and
	// sdk.ErrFailedPrecondition while the cluster is not ready.
	GetConnection(ctx context.Context, name string) (Connection, error)
}

// OperationWatcher is implemented by provisioners that can push operation
// changes. WatchOperation calls send with the operation each time it
// changes and returns after sending a finished one (Operation.Done). When a
// Provisioner does not implement it, the SDK serves WatchOperation by
// polling GetOperation.
type OperationWatcher interface {
	WatchOperation(ctx context.Context, id string, send func(Operation) error) error
}

// JoinMaterialProvider is implemented by provisioners whose clusters accept
// new nodes. Without it the host gets sdk.ErrUnimplemented.
type JoinMaterialProvider interface {
	GetJoinMaterial(ctx context.Context, req JoinMaterialRequest) (JoinMaterial, error)
}

// Resources are CPU and memory for one role of a cluster.
type Resources struct {
	// CPUMillicores is CPU in thousandths of a core (2 cores = 2000).
	CPUMillicores int64
	MemoryBytes   int64
}

// ClusterSpec is the desired shape of a cluster.
type ClusterSpec struct {
	Name              string
	KubernetesVersion string
	ControlPlane      Resources
	Workers           Resources
	// Options are provisioner-specific settings (region, flavour, ...).
	Options map[string]string
}

// ClusterPhase is where a cluster is in its life.
type ClusterPhase string

// Cluster phases.
const (
	ClusterProvisioning ClusterPhase = "provisioning"
	ClusterReady        ClusterPhase = "ready"
	ClusterUpdating     ClusterPhase = "updating"
	ClusterDeleting     ClusterPhase = "deleting"
	ClusterFailed       ClusterPhase = "failed"
)

// Cluster is a cluster as the provisioner knows it.
type Cluster struct {
	Spec    ClusterSpec
	Phase   ClusterPhase
	Message string
	// CreatedAt and UpdatedAt are zero when the provisioner does not know.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Connection is how to reach a ready cluster.
type Connection struct {
	APIEndpoint string
	// CAPEM is the cluster CA certificate, PEM encoded.
	CAPEM []byte
	// Kubeconfig holds credentials: a secret, never logged.
	Kubeconfig []byte
}

// OperationKind says what an operation does.
type OperationKind string

// Operation kinds.
const (
	OperationCreate OperationKind = "create"
	OperationUpdate OperationKind = "update"
	OperationDelete OperationKind = "delete"
)

// OperationState says whether an operation is still going.
type OperationState string

// Operation states.
const (
	OperationRunning   OperationState = "running"
	OperationSucceeded OperationState = "succeeded"
	OperationFailed    OperationState = "failed"
)

// Progress describes how far a piece of long work has come.
type Progress struct {
	// Stage is a short machine-readable step name, e.g. "bootstrap-etcd".
	Stage string
	// Message is for people.
	Message string
	// Percent is 0 to 100.
	Percent int
}

// Operation is a piece of long work on a cluster.
type Operation struct {
	ID          string
	ClusterName string
	Kind        OperationKind
	State       OperationState
	Progress    Progress
	// Error explains a failed operation.
	Error     string
	StartedAt time.Time
	UpdatedAt time.Time
}

// Done reports whether the operation has finished, well or badly.
func (o Operation) Done() bool { return o.State == OperationSucceeded || o.State == OperationFailed }

// CreateClusterRequest asks for a new cluster.
type CreateClusterRequest struct {
	IdempotencyKey string
	Spec           ClusterSpec
}

// UpdateClusterRequest asks to change a cluster to Spec (Spec.Name names it).
type UpdateClusterRequest struct {
	IdempotencyKey string
	Spec           ClusterSpec
}

// DeleteClusterRequest asks to delete a cluster.
type DeleteClusterRequest struct {
	IdempotencyKey string
	Name           string
}

// JoinMaterialRequest asks for what a new node needs to join a cluster.
type JoinMaterialRequest struct {
	IdempotencyKey string
	ClusterName    string
	// TTL is how long the bootstrap token should live; zero lets the
	// provisioner choose.
	TTL time.Duration
}

// JoinMaterial is what a node needs to join a cluster (kubeadm join).
type JoinMaterial struct {
	APIEndpoint string
	// CACertHash is "sha256:<hex>" of the CA's public key.
	CACertHash string
	// BootstrapToken is "<id>.<secret>": a secret.
	BootstrapToken string
	ExpiresAt      time.Time
}
