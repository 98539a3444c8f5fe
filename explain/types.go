package explain

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// EndpointKind says what one side of a connection is.
type EndpointKind string

const (
	// PodEndpoint is a pod that takes part in NetworkPolicy.
	PodEndpoint EndpointKind = "pod"
	// ExternalEndpoint is an address that belongs to no such pod: outside the cluster, a node, or a
	// hostNetwork pod. It has no policy of its own.
	ExternalEndpoint EndpointKind = "external"
)

// Endpoint is one side of a connection: a pod, or an address that is no pod's.
type Endpoint struct {
	Kind      EndpointKind      `json:"kind"`
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name,omitempty"`
	Node      string            `json:"node,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	IPs       []netip.Addr      `json:"ips"`
}

// String is "namespace/name" for a pod, the address otherwise.
func (e Endpoint) String() string {
	if e.Kind == PodEndpoint {
		return e.Namespace + "/" + e.Name
	}
	if len(e.IPs) > 0 {
		return e.IPs[0].String()
	}
	return "?"
}

// Connection is the first packet of the connection being explained.
type Connection struct {
	Source      Endpoint        `json:"source"`
	Destination Endpoint        `json:"destination"`
	SrcIP       netip.Addr      `json:"srcIP"`
	DstIP       netip.Addr      `json:"dstIP"`
	Protocol    corev1.Protocol `json:"protocol"`
	Port        uint16          `json:"port"`
	// PortName is the name the port was given by, when it was; Port is its number on the
	// destination pod.
	PortName string `json:"portName,omitempty"`
}

// PolicyRef names a NetworkPolicy.
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

// Direction is "ingress" or "egress".
type Direction string

const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// RuleRef points at the part of a policy that admits a connection.
type RuleRef struct {
	Policy    PolicyRef `json:"policy"`
	Direction Direction `json:"direction"`
	Rule      int       `json:"rule"` // index in spec.ingress or spec.egress
	// AnyPeer is true when the rule's from/to is empty; Peer is then not set.
	AnyPeer bool `json:"anyPeer,omitempty"`
	Peer    int  `json:"peer"` // index in from/to
	// AllPorts is true when the rule's ports is empty; Port is then not set.
	AllPorts bool `json:"allPorts,omitempty"`
	Port     int  `json:"port"` // index in ports
	// PeerText and PortText describe the admitting peer and port for people, e.g. "pods app=redis"
	// and "6379/TCP".
	PeerText string `json:"peerText"`
	PortText string `json:"portText"`
}

// ReasonKind classifies why a rule does not admit a connection.
type ReasonKind string

const (
	// ReasonPeerPodSelector: a peer's podSelector does not match the pod at the other end.
	ReasonPeerPodSelector ReasonKind = "peer-pod-selector"
	// ReasonPeerNamespaceSelector: a peer's namespaceSelector does not match the other pod's namespace.
	ReasonPeerNamespaceSelector ReasonKind = "peer-namespace-selector"
	// ReasonPeerNamespace: a peer without namespaceSelector selects only the policy's namespace.
	ReasonPeerNamespace ReasonKind = "peer-namespace"
	// ReasonPeerNotPod: a selector peer selects pods and the address at the other end is no pod's.
	ReasonPeerNotPod ReasonKind = "peer-not-pod"
	// ReasonIPBlockCIDR: the address is not in an ipBlock's cidr.
	ReasonIPBlockCIDR ReasonKind = "ipblock-cidr"
	// ReasonIPBlockExcept: the address is in the cidr and in one of its except blocks.
	ReasonIPBlockExcept ReasonKind = "ipblock-except"
	// ReasonPeerInvalid: the peer cannot be understood and matches nothing.
	ReasonPeerInvalid ReasonKind = "peer-invalid"
	// ReasonPort: the port number differs.
	ReasonPort ReasonKind = "port"
	// ReasonProtocol: the protocol differs.
	ReasonProtocol ReasonKind = "protocol"
	// ReasonNamedPort: the destination defines no container port of that name and protocol, or
	// defines it with another number.
	ReasonNamedPort ReasonKind = "named-port"
	// ReasonPortInvalid: the port cannot be understood and matches nothing.
	ReasonPortInvalid ReasonKind = "port-invalid"
)

// Reason is one reason a rule does not admit a connection: for one of its peers, or for one of its
// ports.
type Reason struct {
	Kind ReasonKind `json:"kind"`
	Peer *int       `json:"peer,omitempty"` // index in from/to, for peer reasons
	Port *int       `json:"port,omitempty"` // index in ports, for port reasons
	Text string     `json:"text"`
}

// RuleRejection is a rule of an isolating policy that does not admit the connection, with every
// reason: one per peer when no peer matches, one per port when no port matches.
type RuleRejection struct {
	Policy    PolicyRef `json:"policy"`
	Direction Direction `json:"direction"`
	Rule      int       `json:"rule"`
	Reasons   []Reason  `json:"reasons"`
}

// DirectionAnswer is the spec's answer for one pod and one direction: egress of the source pod or
// ingress of the destination pod.
type DirectionAnswer struct {
	Direction Direction `json:"direction"`
	Pod       string    `json:"pod"` // namespace/name
	// Isolated is true when a policy selects the pod for the direction; IsolatedBy lists them all.
	Isolated   bool        `json:"isolated"`
	IsolatedBy []PolicyRef `json:"isolatedBy,omitempty"`
	Allowed    bool        `json:"allowed"`
	// AdmittedBy is the first rule, by policy then rule index, that admits the connection.
	AdmittedBy *RuleRef `json:"admittedBy,omitempty"`
	// Rejections are every rule of the isolating policies when none admits. An isolating policy
	// without rules for the direction admits nothing and has no entry.
	Rejections []RuleRejection `json:"rejections,omitempty"`
	// Audit is what the audited policies selecting the pod for the direction would change; nil when
	// none does. They take no part in the fields above.
	Audit *AuditAnswer `json:"audit,omitempty"`
}

// AuditAnswer is what the audited policies (annotation nftpolicy.io/mode: audit) of one pod and
// direction would make of the connection if they were enforced.
type AuditAnswer struct {
	Policies []PolicyRef `json:"policies"`
	// Verdict is WouldDrop, WouldAllow, or empty when enforcing them would change nothing.
	Verdict string `json:"verdict,omitempty"`
	// AdmittedBy is the first audited rule, by policy then rule index, that admits the connection.
	AdmittedBy *RuleRef `json:"admittedBy,omitempty"`
}

// Verdicts of AuditAnswer.
const (
	WouldDrop  = "would-drop"
	WouldAllow = "would-allow"
)

// SpecAnswer is what the policies say about a connection.
type SpecAnswer struct {
	Connection Connection       `json:"connection"`
	Egress     *DirectionAnswer `json:"egress,omitempty"`  // nil when the source is no pod
	Ingress    *DirectionAnswer `json:"ingress,omitempty"` // nil when the destination is no pod
	Allowed    bool             `json:"allowed"`
	// Problems are what the involved policies hold that cannot be enforced as written (that part
	// matches nothing).
	Problems []string `json:"problems,omitempty"`
}

// Direction returns the answer for a direction, nil when that side is no pod.
func (a *SpecAnswer) Direction(d Direction) *DirectionAnswer {
	if d == Egress {
		return a.Egress
	}
	return a.Ingress
}

// Verdict is what a node's table does with the packet.
type Verdict string

const (
	Accept Verdict = "accept"
	Drop   Verdict = "drop"
)

// DataplaneAnswer is the path of the packet through one node's table for one direction, traced
// over the table as the kernel holds it.
type DataplaneAnswer struct {
	Node      string    `json:"node"`
	Direction Direction `json:"direction"`
	// Verdict is the table's for the first packet of a new connection; Conntrack says whether
	// packets of an existing flow would skip it.
	Verdict   Verdict    `json:"verdict"`
	Path      []PathStep `json:"path"`
	Conntrack Conntrack  `json:"conntrack"`
	// Drift lists the differences between the agent's committed ruleset's trace and the kernel's.
	Drift []string `json:"drift,omitempty"`
}

// PathStep is one rule the packet was matched against.
type PathStep struct {
	Hook   string `json:"hook"`
	Chain  string `json:"chain"`
	Rule   int    `json:"rule"`             // index in the chain
	Handle uint64 `json:"handle,omitempty"` // the rule's handle in the kernel
	Text   string `json:"text"`
	// Comment names the policy rule or the isolation the nft rule was compiled from.
	Comment string `json:"comment,omitempty"`
	Matched bool   `json:"matched"`
	// FailedMatch is the first match that did not match, when Matched is false.
	FailedMatch string `json:"failedMatch,omitempty"`
	// Verdict is what the rule did ("accept", "drop", "jump CHAIN", ...); empty when nothing.
	Verdict      string   `json:"verdict,omitempty"`
	Counter      string   `json:"counter,omitempty"`
	CounterValue uint64   `json:"counterValue,omitempty"` // packets, for the rule that decided
	Lookups      []Lookup `json:"lookups,omitempty"`
	VMap         *VMapHit `json:"vmap,omitempty"`
}

// Lookup is one set lookup of a rule.
type Lookup struct {
	Set   string `json:"set"`
	Key   string `json:"key"`
	Found bool   `json:"found"`
}

// VMapHit is one verdict map lookup of a rule.
type VMapHit struct {
	Map     string `json:"map"`
	Key     string `json:"key"`
	Verdict string `json:"verdict,omitempty"`
	Found   bool   `json:"found"`
}

// Conntrack says whether conntrack already holds the flow: an established flow skips policy.
type Conntrack struct {
	Held  bool   `json:"held"`
	State string `json:"state,omitempty"` // e.g. "ESTABLISHED"
}

// Report is the whole answer: the spec's, each involved node's, and their differences.
type Report struct {
	Spec      SpecAnswer        `json:"spec"`
	Dataplane []DataplaneAnswer `json:"dataplane,omitempty"`
	Drift     []string          `json:"drift,omitempty"`
}
