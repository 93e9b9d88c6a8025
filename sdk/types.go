package sdk

// The plugin API's types live in package api, a leaf that the protocol
// conversions (internal/convert) can import; these names keep them where
// plugin authors use them: sdk.Provisioner is api.Provisioner, the same
// type.

import "github.com/berthgw/berth/sdk/api"

// A plugin's description and health.
type (
	Capability   = api.Capability
	Info         = api.Info
	HealthStatus = api.HealthStatus
	Health       = api.Health
)

// The provisioner capability.
type (
	Provisioner          = api.Provisioner
	OperationWatcher     = api.OperationWatcher
	JoinMaterialProvider = api.JoinMaterialProvider
	Resources            = api.Resources
	ClusterSpec          = api.ClusterSpec
	ClusterPhase         = api.ClusterPhase
	Cluster              = api.Cluster
	Connection           = api.Connection
	OperationKind        = api.OperationKind
	OperationState       = api.OperationState
	Progress             = api.Progress
	Operation            = api.Operation
	CreateClusterRequest = api.CreateClusterRequest
	UpdateClusterRequest = api.UpdateClusterRequest
	DeleteClusterRequest = api.DeleteClusterRequest
	JoinMaterialRequest  = api.JoinMaterialRequest
	JoinMaterial         = api.JoinMaterial
)

// The billing capability.
type (
	Billing          = api.Billing
	Setting          = api.Setting
	Plan             = api.Plan
	CheckoutRequest  = api.CheckoutRequest
	Checkout         = api.Checkout
	PortalRequest    = api.PortalRequest
	Portal           = api.Portal
	InvoicesRequest  = api.InvoicesRequest
	Invoice          = api.Invoice
	WebhookRequest   = api.WebhookRequest
	BillingEventType = api.BillingEventType
	BillingEvent     = api.BillingEvent
	CancelRequest    = api.CancelRequest
)

// The notifier capability.
type (
	Notifier       = api.Notifier
	ChannelChecker = api.ChannelChecker
	Channel        = api.Channel
	ChannelSetting = api.ChannelSetting
	ChannelCheck   = api.ChannelCheck
	Message        = api.Message
	Delivery       = api.Delivery
)

// The DNS capability.
type (
	DNSProvider   = api.DNSProvider
	Record        = api.Record
	RecordsChange = api.RecordsChange
)

// The host's services.
type (
	Host    = api.Host
	KV      = api.KV
	KVEntry = api.KVEntry
	Events  = api.Events
	Event   = api.Event
)

// Capabilities and health states.
const (
	CapabilityProvisioner = api.CapabilityProvisioner
	CapabilityBilling     = api.CapabilityBilling
	CapabilityNotifier    = api.CapabilityNotifier
	CapabilityDNS         = api.CapabilityDNS
	HealthUnknown         = api.HealthUnknown
	HealthServing         = api.HealthServing
	HealthDegraded        = api.HealthDegraded
	HealthNotServing      = api.HealthNotServing
)

// Cluster phases, operation kinds and operation states.
const (
	ClusterProvisioning = api.ClusterProvisioning
	ClusterReady        = api.ClusterReady
	ClusterUpdating     = api.ClusterUpdating
	ClusterDeleting     = api.ClusterDeleting
	ClusterFailed       = api.ClusterFailed
	OperationCreate     = api.OperationCreate
	OperationUpdate     = api.OperationUpdate
	OperationDelete     = api.OperationDelete
	OperationRunning    = api.OperationRunning
	OperationSucceeded  = api.OperationSucceeded
	OperationFailed     = api.OperationFailed
)

// Billing event types and plan intervals.
const (
	EventCheckoutCompleted    = api.EventCheckoutCompleted
	EventPaymentSucceeded     = api.EventPaymentSucceeded
	EventPaymentFailed        = api.EventPaymentFailed
	EventInvoicePaid          = api.EventInvoicePaid
	EventInvoicePaymentFailed = api.EventInvoicePaymentFailed
	EventSubscriptionUpdated  = api.EventSubscriptionUpdated
	EventSubscriptionDeleted  = api.EventSubscriptionDeleted
	IntervalOnce              = api.IntervalOnce
	IntervalMonth             = api.IntervalMonth
	IntervalYear              = api.IntervalYear
)
