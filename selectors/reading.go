package selectors

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// PolicyReading is one NetworkPolicy read by the same compilation the Resolver uses, kept entry by
// entry in the order written, for tools that explain a verdict rule by rule, peer by peer and port
// by port. The Resolver merges and deduplicates what this keeps apart; the matching functions below
// are the ones its sets are built with.
type PolicyReading struct {
	Ref PolicyRef
	// PodSelector is nil when spec.podSelector is invalid: the policy then selects no pod.
	PodSelector labels.Selector
	// Directions are the effective policy types.
	Directions []Direction
	Ingress    []RuleReading
	Egress     []RuleReading
	Problems   []Problem
}

// RuleReading is one rule of a policy.
type RuleReading struct {
	Direction Direction
	Index     int
	// AnyPeer is true when from/to is empty: any address, inside or outside the cluster.
	AnyPeer bool
	Peers   []PeerReading
	// AllPorts is true when ports is empty: every protocol and port.
	AllPorts bool
	Ports    []PortReading
}

// PeerReading is one entry of a rule's from/to.
type PeerReading struct {
	Index int
	// Invalid is true when the peer cannot be understood; it then matches nothing and Problem says
	// why.
	Invalid bool
	Problem string
	// IPBlock peers: CIDR and Except as read (host bits masked).
	IPBlock bool
	CIDR    netip.Prefix
	Except  []netip.Prefix
	// Selector peers: NamespaceSelector is nil when absent, and the peer is then scoped to
	// Namespace, the policy's. PodSelector selects everything when absent.
	Namespace         string
	NamespaceSelector labels.Selector
	PodSelector       labels.Selector
	// Definition is the peer's canonical definition, as set descriptions show it.
	Definition string

	peer peer
}

// PortReading is one entry of a rule's ports.
type PortReading struct {
	Index int
	// Invalid is true when the entry cannot be understood; it then matches nothing and Problem
	// says why.
	Invalid  bool
	Problem  string
	Protocol corev1.Protocol // defaulted to TCP
	// Name is set for a named port; Range otherwise (0-65535 when no port is given).
	Name  string
	Range PortRange
}

// ReadPolicy reads a policy.
func ReadPolicy(np *networkingv1.NetworkPolicy) *PolicyReading {
	ref := PolicyRef{Namespace: np.Namespace, Name: np.Name}
	c := newPolicyCompiler(ref)
	pr := &PolicyReading{Ref: ref, Directions: c.effectivePolicyTypes(np)}
	if sel, ok := c.policySelector(np); ok {
		pr.PodSelector = sel.selector
	}
	for i := range np.Spec.Ingress {
		rule := &np.Spec.Ingress[i]
		pr.Ingress = append(pr.Ingress, c.readRule(Ingress, i, rule.From, rule.Ports))
	}
	for i := range np.Spec.Egress {
		rule := &np.Spec.Egress[i]
		pr.Egress = append(pr.Egress, c.readRule(Egress, i, rule.To, rule.Ports))
	}
	pr.Problems = c.problems.sorted()
	return pr
}

func (c *policyCompiler) readRule(dir Direction, index int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) RuleReading {
	field := fmt.Sprintf("spec.%s[%d]", dir, index)
	rr := RuleReading{Direction: dir, Index: index, AnyPeer: len(peers) == 0, AllPorts: len(ports) == 0}
	for i := range peers {
		f := fmt.Sprintf("%s.%s[%d]", field, peersField(dir), i)
		p, ok := c.compilePeer(&peers[i], f)
		pe := PeerReading{Index: i, Invalid: !ok, peer: p}
		if ok {
			pe.Definition, pe.IPBlock, pe.CIDR, pe.Except = p.canonical, p.isIPBlock, p.cidr, p.excepts
			pe.Namespace, pe.PodSelector = p.scopeNamespace, p.pods.selector
			if p.namespaces != nil {
				pe.NamespaceSelector = p.namespaces.selector
			}
		} else {
			pe.Problem = c.problemsOf(f)
		}
		rr.Peers = append(rr.Peers, pe)
	}
	for i := range ports {
		f := fmt.Sprintf("%s.ports[%d]", field, i)
		numeric, named, ok := c.compilePort(&ports[i], f)
		po := PortReading{Index: i, Invalid: !ok, Range: numeric, Protocol: numeric.Protocol}
		switch {
		case !ok:
			po.Problem = c.problemsOf(f)
		case named != nil:
			po.Name, po.Protocol = named.name, named.protocol
		}
		rr.Ports = append(rr.Ports, po)
	}
	return rr
}

// problemsOf joins the messages of the problems found in a field and the fields within it.
func (c *policyCompiler) problemsOf(field string) string {
	var msgs []string
	for p := range c.problems {
		if rest, ok := strings.CutPrefix(p.Field, field); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			msgs = append(msgs, p.Field+": "+p.Message)
		}
	}
	slices.Sort(msgs)
	return strings.Join(msgs, "; ")
}

// Selects reports whether the policy selects a pod: an eligible pod of its namespace that its
// podSelector matches.
//
// "podSelector selects the pods to which this NetworkPolicy object applies."
func (p *PolicyReading) Selects(pod *Pod) bool {
	return pod.Namespace == p.Ref.Namespace && Eligible(pod) && p.PodSelector != nil && p.PodSelector.Matches(labelsOf(pod))
}

// Affects reports whether the policy isolates the pods it selects for a direction.
func (p *PolicyReading) Affects(dir Direction) bool { return slices.Contains(p.Directions, dir) }

// Rules returns the rules of one direction; nil when the policy does not affect it.
func (p *PolicyReading) Rules(dir Direction) []RuleReading {
	switch {
	case !p.Affects(dir):
		return nil
	case dir == Ingress:
		return p.Ingress
	default:
		return p.Egress
	}
}

// AdmitsAddr reports whether an ipBlock peer holds an address: in the cidr and in no except.
func (pe *PeerReading) AdmitsAddr(addr netip.Addr) bool {
	return !pe.Invalid && pe.IPBlock && slices.ContainsFunc(pe.peer.ipRanges, func(r AddrRange) bool { return r.contains(addr) })
}

// AdmitsPod reports whether a selector peer selects an eligible pod, given the labels of the pod's
// namespace (NamespaceLabels): the namespace is the policy's or one the namespaceSelector matches,
// and the podSelector matches the pod.
func (pe *PeerReading) AdmitsPod(pod *Pod, namespaceLabels labels.Set) bool {
	if pe.Invalid || pe.IPBlock || !Eligible(pod) {
		return false
	}
	if pe.peer.namespaces == nil {
		if pod.Namespace != pe.peer.scopeNamespace {
			return false
		}
	} else if !pe.peer.namespaces.selector.Matches(namespaceLabels) {
		return false
	}
	return pe.peer.selects(pod)
}

// Admits reports whether a port entry matches a connection's protocol and port. A named port
// resolves on namedOn, the pod that is reached (nil: an address that is no pod's, which has no
// named ports).
func (po *PortReading) Admits(protocol corev1.Protocol, port uint16, namedOn *Pod) bool {
	switch {
	case po.Invalid || protocol != po.Protocol:
		return false
	case po.Name == "":
		return po.Range.First <= port && port <= po.Range.Last
	case namedOn == nil:
		return false
	default:
		return slices.Contains(NamedPortNumbers(namedOn, po.Name, po.Protocol), port)
	}
}
