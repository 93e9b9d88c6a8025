package events

import "slices"

// Type describes one kind of event. Its Version changes when its Data
// fields change incompatibly, so receivers can tell shapes apart.
type Type struct {
	Name     string
	Version  int
	Severity Severity
	// Fields are the keys of Data this type carries.
	Fields []string
	Doc    string
}

// The catalog's types. docs/notifications.md shows a JSON example of each
// (a test checks).
const (
	OperationSucceeded = "operation.succeeded"
	OperationFailed    = "operation.failed"
	OperationCancelled = "operation.cancelled"

	ClusterRegistered  = "cluster.registered"
	ClusterDeleted     = "cluster.deleted"
	ClusterUnreachable = "cluster.unreachable"
	ClusterRecovered   = "cluster.recovered"

	NodeNotReady = "node.not_ready"
	NodeReady    = "node.ready"
	NodeJoined   = "node.joined"

	CertificateRenewalFailed = "certificate.renewal_failed"
	CertificateExpiring      = "certificate.expiring"

	UserLockedOut     = "user.locked_out"
	UserCreated       = "user.created"
	UserDisabled      = "user.disabled"
	UserPasswordReset = "user.password_reset"

	JoinTokenUsed    = "join_token.used"
	JoinTokenExpired = "join_token.expired"

	PluginDegraded  = "plugin.degraded"
	PluginRecovered = "plugin.recovered"

	QuotaExceeded = "quota.exceeded"

	DNSSyncFailed = "dns.sync_failed"
	DNSRecovered  = "dns.recovered"

	OrderPaid          = "order.paid"
	PaymentFailed      = "payment.failed"
	SubscriptionEnded  = "subscription.ended"
	EntitlementChanged = "entitlement.changed"

	// NotificationTest is what POST /api/v1/notifications/test sends.
	NotificationTest = "notification.test"
)

var catalog = []Type{
	{OperationSucceeded, 1, Info, []string{"operation", "kind"}, "An operation (provisioning, deletion, upgrade…) finished."},
	{OperationFailed, 1, Error, []string{"operation", "kind", "error"}, "An operation gave up; error says why."},
	{OperationCancelled, 1, Warning, []string{"operation", "kind"}, "An operation was cancelled before it finished."},

	{ClusterRegistered, 1, Info, []string{"source"}, "A cluster was registered or provisioned into Berth."},
	{ClusterDeleted, 1, Warning, nil, "A cluster was removed from Berth."},
	{ClusterUnreachable, 1, Error, []string{"error"}, "Probes stopped reaching a cluster's API server (sent on the transition, not every probe)."},
	{ClusterRecovered, 1, Info, []string{"down_for"}, "A cluster that was unreachable answers again."},

	{NodeNotReady, 1, Warning, []string{"node", "reason"}, "A node's Ready condition turned false or unknown."},
	{NodeReady, 1, Info, []string{"node"}, "A node that was not ready is ready again."},
	{NodeJoined, 1, Info, []string{"node"}, "A node registered with the cluster for the first time."},

	{CertificateRenewalFailed, 1, Error, []string{"domain", "error"}, "Berth could not renew one of its TLS certificates."},
	{CertificateExpiring, 1, Warning, []string{"domain", "expires_at", "days_left"}, "One of Berth's TLS certificates expires within the warning window."},

	{UserLockedOut, 1, Warning, []string{"username", "until"}, "Repeated failed sign-ins locked an account."},
	{UserCreated, 1, Info, []string{"user", "username"}, "An administrator created a user."},
	{UserDisabled, 1, Warning, []string{"user", "username"}, "A user was disabled; their sessions and keys stop working."},
	{UserPasswordReset, 1, Warning, []string{"user", "username"}, "An administrator reset a user's password."},

	{JoinTokenUsed, 1, Info, []string{"token", "node"}, "A node join token was used."},
	{JoinTokenExpired, 1, Info, []string{"token"}, "A node join token expired without being used."},

	{PluginDegraded, 1, Error, []string{"plugin", "error"}, "A plugin stopped answering health checks or crashed past its restart budget."},
	{PluginRecovered, 1, Info, []string{"plugin"}, "A degraded plugin is serving again."},

	{QuotaExceeded, 1, Warning, []string{"user", "limit", "want", "quota"}, "A request was refused because it would pass the user's quota."},

	{DNSSyncFailed, 1, Error, []string{"error"}, "Berth could not bring the managed DNS zone in line (sent when passes start failing, not every pass)."},
	{DNSRecovered, 1, Info, []string{"down_for"}, "The managed DNS zone is in line again after failing passes."},

	{OrderPaid, 1, Info, []string{"order", "plan", "amount", "currency"}, "An order was paid (personal: to the buyer; amount in minor units)."},
	{PaymentFailed, 1, Warning, []string{"order", "plan", "reason"}, "A payment for an order or a renewal failed (personal and to operators)."},
	{SubscriptionEnded, 1, Warning, []string{"order", "plan"}, "A subscription ended; its entitlement is withdrawn."},
	{EntitlementChanged, 1, Info, []string{"user", "plan", "valid_until"}, "A user's plan, and with it their quota, changed."},

	{NotificationTest, 1, Info, []string{"channel"}, "A test message an administrator sent through a channel."},
}

// Types returns the catalog, in documentation order.
func Types() []Type { return slices.Clone(catalog) }

// Lookup returns the type called name.
func Lookup(name string) (Type, bool) {
	i := slices.IndexFunc(catalog, func(t Type) bool { return t.Name == name })
	if i < 0 {
		return Type{}, false
	}
	return catalog[i], true
}
