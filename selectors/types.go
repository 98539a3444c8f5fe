package selectors

import (
	"fmt"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Pod is the part of a Pod that NetworkPolicy semantics depend on.
type Pod struct {
	Namespace   string
	Name        string
	Labels      map[string]string
	IPs         []netip.Addr // every family, from status.podIPs
	Node        string       // spec.nodeName
	Phase       corev1.PodPhase
	HostNetwork bool
	Ports       []ContainerPort // every container's ports
}

// ReadsAs reports whether two versions of a pod read the same to NetworkPolicy semantics: every
// field but namespace and name is equal.
func (p *Pod) ReadsAs(q *Pod) bool {
	a, b := *p, *q
	a.Namespace, a.Name, b.Namespace, b.Name = "", "", "", ""
	return reflect.DeepEqual(a, b)
}

// ContainerPort is one port a pod's container declares.
type ContainerPort struct {
	Name     string
	Number   int32
	Protocol corev1.Protocol // "" means TCP, as in the Pod API
}

// Namespace is the part of a Namespace that NetworkPolicy semantics depend on.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Snapshot is the world one node's agent resolves: every pod and namespace of the cluster (peers may
// live anywhere) and every NetworkPolicy.
type Snapshot struct {
	Node       string
	Pods       []Pod
	Namespaces []Namespace
	Policies   []*networkingv1.NetworkPolicy
	// ClusterPolicies are every ClusterNetworkPolicy.
	ClusterPolicies []*v1beta1.ClusterNetworkPolicy
}

// PolicyRef names a NetworkPolicy.
type PolicyRef struct {
	Namespace string
	Name      string
}

func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

// Direction is ingress or egress.
type Direction string

const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Model is the resolved enforcement state for one node. Every slice is sorted, so two Models built
// from the same Snapshot are deeply equal.
type Model struct {
	Node string
	// LocalPods are the pods on Node that can be enforced: not hostNetwork, with at least one IP,
	// not Succeeded or Failed. Sorted by namespace, then name. A pod that no policy selects is listed
	// too (with nil Ingress and Egress): its addresses are needed for anti-spoofing.
	LocalPods []LocalPod
	// AddressSets are the distinct peer sets that Rules of local pods refer to, sorted by ID.
	AddressSets []AddressSet
	// ServiceSets are the distinct (address, protocol, port) sets that egress rules with named ports
	// refer to, sorted by ID.
	ServiceSets []ServiceSet
	// Problems found in policies. A problem never widens access: the part of a rule that cannot be
	// understood matches nothing.
	Problems []Problem
	// ClusterProblems are the problems found in ClusterNetworkPolicies (Policy has no namespace),
	// sorted. Like Problems, they never widen access: see failClosed.
	ClusterProblems []Problem
}

// LocalPod is one enforceable pod on this node.
type LocalPod struct {
	Namespace string
	Name      string
	IPs       []netip.Addr
	Ingress   *Isolation // nil: no policy isolates this pod for ingress
	Egress    *Isolation // nil: no policy isolates this pod for egress
	// AuditIngress and AuditEgress are what the audited policies (ModeAnnotation) that select the pod
	// would make of it in each direction, as if no other policy existed; nil when none selects it.
	// Ingress and Egress leave audited policies out.
	AuditIngress *Isolation
	AuditEgress  *Isolation
	// ClusterIngress and ClusterEgress are the ClusterNetworkPolicy rules that apply to the pod in
	// each direction; nil when no rule of that direction applies.
	ClusterIngress *ClusterRules
	ClusterEgress  *ClusterRules
}

// ClusterRules are the ClusterNetworkPolicy rules of one local pod and direction, tier by tier, in
// the order they are evaluated: policies by priority then name, each policy's rules as written. The
// first rule that matches decides for its tier.
type ClusterRules struct {
	Admin    []ClusterRule
	Baseline []ClusterRule
}

// ClusterRule is one ClusterNetworkPolicy rule as it applies to one local pod. Traffic matches when
// it matches the peers AND one of the ports.
type ClusterRule struct {
	Policy   string // the ClusterNetworkPolicy's name
	Priority int32
	Index    int    // position in spec.ingress or spec.egress
	Name     string // the rule's name, as written
	Action   ClusterAction
	// AnyPeer is true only for a rule failed closed into "deny all"; otherwise Peers is the ID of the
	// AddressSet of the rule's peers, shared with NetworkPolicy rules of the same peers.
	AnyPeer bool
	Peers   string
	// AllPorts, Ports and NamedPorts mean what they mean in Rule.
	AllPorts   bool
	Ports      []PortRange
	NamedPorts []string
}

// Key is "namespace/name".
func (p LocalPod) Key() string { return p.Namespace + "/" + p.Name }

// Isolation is what an isolated pod allows in one direction: the union of the rules of every policy
// that selects it for that direction. No rules means everything is denied.
type Isolation struct {
	Policies []PolicyRef // the selecting policies, sorted
	Rules    []Rule      // sorted by policy, then rule index
}

// Rule is one ingress or egress rule of a policy as it applies to one local pod. Traffic is allowed
// when it matches the peers AND one of the ports.
type Rule struct {
	Policy PolicyRef
	Index  int // position in spec.ingress or spec.egress

	// AnyPeer is true when from/to is empty: any address, inside or outside the cluster.
	AnyPeer bool
	// Peers is the ID of the AddressSet holding every peer address when AnyPeer is false.
	Peers string

	// AllPorts is true when ports is empty: every protocol and port (ICMP included).
	AllPorts bool
	// Ports are the numeric port ranges this rule allows (named ports of ingress rules already
	// resolved against the local pod). Empty with AllPorts false means no numeric port matches.
	Ports []PortRange
	// NamedPorts are IDs of ServiceSets: egress rules' named ports, resolved per destination pod.
	NamedPorts []string
}

// PortRange is a protocol and an inclusive port range. First=0, Last=65535 means every port of the
// protocol.
type PortRange struct {
	Protocol corev1.Protocol // TCP, UDP or SCTP
	First    uint16
	Last     uint16
}

// AllOfProtocol reports whether the range covers every port of its protocol.
func (r PortRange) AllOfProtocol() bool { return r.First == 0 && r.Last == 65535 }

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct {
	From netip.Addr
	To   netip.Addr
}

// AddressSet is a deduplicated set of peer addresses: the union of the peers of one rule. Two rules
// with the same peers (same selectors, same policy namespace scoping, same ipBlocks) share one set.
type AddressSet struct {
	ID          string      // short, stable, derived from the peers' definition (not their members)
	Description string      // the peers' definition, for people
	Ranges      []AddrRange // sorted, disjoint and non-adjacent; both families
	// HasIPBlocks is true when the definition includes an ipBlock, so that a range may cover addresses
	// no pod has. Without one, every address in Ranges is a pod's (a range only joins neighbours).
	// It follows from the definition, like ID, so it never changes for a given ID.
	HasIPBlocks bool
}

// ServiceSet holds (destination pod address, protocol, port) triples: a named port of an egress rule
// resolved on every destination pod that defines it.
type ServiceSet struct {
	ID          string
	Description string
	Services    []Service // sorted
}

// Service is one destination pod address with one of its ports.
type Service struct {
	Addr     netip.Addr
	Protocol corev1.Protocol
	Port     uint16
}

// Problem is something in a policy that cannot be enforced as written.
type Problem struct {
	Policy  PolicyRef
	Field   string // e.g. "spec.ingress[0].from[1].ipBlock.cidr"
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.Policy, p.Field, p.Message)
}
