package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a NodeEnforcement.
const (
	// ConditionProgrammed is True when the node's table holds exactly the rules the current
	// policies, pods and namespaces call for: the kernel holds what the agent committed. Reason
	// Drifted (status False) means another writer changed the table and the repair has not
	// committed yet. It is False with reason Forbidden when the API server refuses the agent a list
	// or watch its role should grant, and CacheStale when a list or watch fails otherwise: the
	// message names the type, and the table keeps what the agent last committed.
	ConditionProgrammed = "Programmed"
	// ConditionDegraded is True when something is enforced more strictly than written (a policy
	// problem: the part that cannot be understood matches nothing) or the last sync failed.
	ConditionDegraded = "Degraded"
)

// Condition reasons of a NodeEnforcement.
const (
	ReasonCommitted      = "Committed"
	ReasonApplyFailed    = "ApplyFailed"
	ReasonSyncFailed     = "SyncFailed"
	ReasonPolicyProblems = "PolicyProblems"
	ReasonHealthy        = "Healthy"
	ReasonDrifted        = "Drifted"
	ReasonForbidden      = "Forbidden"
	ReasonCacheStale     = "CacheStale"
)

// Causes of a drift repair: how the agent found that another writer changed its table.
const (
	// DriftCauseNotification: an nf_tables notification showed the change as it happened.
	DriftCauseNotification = "notification"
	// DriftCauseReadBack: reading the table back (every resync, or after notifications were lost)
	// found that it differs from what the agent committed.
	DriftCauseReadBack = "readback"
)

// MaxProblems bounds status.problems so that one broken policy cannot grow the object without limit.
const MaxProblems = 20

// NodeEnforcementSpec says which node and table the status describes. The node's agent writes it.
type NodeEnforcementSpec struct {
	// NodeName is the node whose pods this object describes; it equals metadata.name.
	// +kubebuilder:validation:MinLength=1
	NodeName string `json:"nodeName"`

	// Table is the nftables table (family inet) the agent owns on the node.
	// +kubebuilder:validation:MinLength=1
	Table string `json:"table"`
}

// PolicyProblem is something in a NetworkPolicy that the agent cannot enforce as written. The part of
// the rule that cannot be understood matches nothing: a problem never widens access.
type PolicyProblem struct {
	// PolicyNamespace is the namespace of the NetworkPolicy.
	PolicyNamespace string `json:"policyNamespace"`
	// PolicyName is the name of the NetworkPolicy.
	PolicyName string `json:"policyName"`
	// Field is the path of the offending field, e.g. spec.ingress[0].from[1].ipBlock.cidr.
	// +optional
	Field string `json:"field,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// NodeEnforcementStatus is what the node's agent last programmed.
type NodeEnforcementStatus struct {
	// Conditions are Programmed and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation of this object the status was written for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// LocalPods counts the enforceable pods on the node: not hostNetwork, with an address, not finished.
	// +optional
	LocalPods int32 `json:"localPods"`
	// IsolatedPods counts the local pods that at least one policy isolates, for ingress or egress.
	// +optional
	IsolatedPods int32 `json:"isolatedPods"`
	// PoliciesInEffect counts the NetworkPolicies that select at least one local pod.
	// +optional
	PoliciesInEffect int32 `json:"policiesInEffect"`
	// AuditedPolicies counts the NetworkPolicies annotated nftpolicy.io/mode: audit that select at
	// least one local pod: evaluated, counted and logged, not enforced. PoliciesInEffect leaves them
	// out.
	// +optional
	AuditedPolicies int32 `json:"auditedPolicies,omitempty"`
	// Chains counts the chains of the programmed table.
	// +optional
	Chains int32 `json:"chains"`
	// SetElements counts the elements of every set and verdict map of the programmed table. Peers
	// joining and leaving change it on every such event, so a change of it alone is written at most
	// every 30 seconds; every other field is written when it changes.
	// +optional
	SetElements int32 `json:"setElements"`

	// LastSyncTime is when the agent last finished a sync.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// LastSyncDuration is how long that sync took, from listing the cache to the committed transaction.
	// +optional
	LastSyncDuration *metav1.Duration `json:"lastSyncDuration,omitempty"`

	// ProblemCount counts the problems of the policies in effect on the node; Problems lists the first
	// of them.
	// +optional
	ProblemCount int32 `json:"problemCount"`
	// Problems lists problems of the policies in effect on the node, at most 20.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	Problems []PolicyProblem `json:"problems,omitempty"`

	// DriftRepairs counts the changes to the table made by another writer that the running agent found
	// and undid by replacing the whole table; LastDriftRepair describes the latest.
	// +optional
	DriftRepairs int32 `json:"driftRepairs,omitempty"`
	// +optional
	LastDriftRepair *DriftRepair `json:"lastDriftRepair,omitempty"`
}

// DriftRepair is a change to the node's table made by another writer, found and undone by the agent.
type DriftRepair struct {
	// Time is when the change was found.
	Time metav1.Time `json:"time"`
	// Cause is how it was found: notification or readback.
	Cause string `json:"cause"`
	// Message says what differed, and who changed it when the notification named them.
	Message string `json:"message"`
	// RepairedAfter is the time from finding the change to the commit that undid it.
	RepairedAfter metav1.Duration `json:"repairedAfter"`
}

// NodeEnforcement reports how one node's agent enforces NetworkPolicies: whether its table is
// programmed, how much it holds, and which policies it cannot enforce as written. There is one per
// node, named after the node and owned by it, written only by that node's agent.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ne;nodeenf
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.localPods`
// +kubebuilder:printcolumn:name="Isolated",type=integer,JSONPath=`.status.isolatedPods`
// +kubebuilder:printcolumn:name="Policies",type=integer,JSONPath=`.status.policiesInEffect`
// +kubebuilder:printcolumn:name="Chains",type=integer,JSONPath=`.status.chains`,priority=1
// +kubebuilder:printcolumn:name="Elements",type=integer,JSONPath=`.status.setElements`,priority=1
// +kubebuilder:printcolumn:name="Problems",type=integer,JSONPath=`.status.problemCount`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Sync Time",type=string,JSONPath=`.status.lastSyncDuration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeEnforcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeEnforcementSpec   `json:"spec"`
	Status NodeEnforcementStatus `json:"status,omitempty"`
}

// NodeEnforcementList is a list of NodeEnforcements.
//
// +kubebuilder:object:root=true
type NodeEnforcementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeEnforcement `json:"items"`
}
