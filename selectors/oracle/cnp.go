package oracle

import (
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// verdict is what a tier decides for a connection in one direction.
type verdict int

const (
	undecided verdict = iota // no rule matched, or a Pass: the next tier decides
	accepted
	denied
)

// tierVerdict evaluates one tier for one pod and direction: "Policies with lower priority values
// have higher precedence" (equal priorities: by name, the order this project chose), rules in the
// order written, the first matching rule decides. Pass "Skips all further ClusterNetworkPolicy rules
// in the current tier".
func tierVerdict(s *selectors.Snapshot, tier v1beta1.Tier, pod *selectors.Pod, dir selectors.Direction, c Connection, other *selectors.Pod) verdict {
	var policies []*v1beta1.ClusterNetworkPolicy
	for _, cnp := range s.ClusterPolicies {
		if cnp != nil && cnp.Spec.Tier == tier && subjectSelects(s, &cnp.Spec.Subject, pod) {
			policies = append(policies, cnp)
		}
	}
	sort.Slice(policies, func(i, j int) bool {
		a, b := policies[i], policies[j]
		if a.Spec.Priority != b.Spec.Priority {
			return a.Spec.Priority < b.Spec.Priority
		}
		return a.Name < b.Name
	})
	for _, cnp := range policies {
		for _, rule := range cnpRules(cnp, dir) {
			action, matches := ruleVerdict(s, rule, dir, pod, c, other)
			if !matches {
				continue
			}
			switch action {
			case v1beta1.ClusterNetworkPolicyRuleActionAccept:
				return accepted
			case v1beta1.ClusterNetworkPolicyRuleActionPass:
				return undecided
			default:
				return denied
			}
		}
	}
	return undecided
}

// cnpRule is an ingress or egress rule with its peers as egress peers (ingress peers are a subset).
type cnpRule struct {
	action    v1beta1.ClusterNetworkPolicyRuleAction
	peers     []v1beta1.ClusterNetworkPolicyEgressPeer
	protocols []v1beta1.ClusterNetworkPolicyProtocol
}

func cnpRules(cnp *v1beta1.ClusterNetworkPolicy, dir selectors.Direction) []cnpRule {
	var out []cnpRule
	if dir == selectors.Ingress {
		for _, r := range cnp.Spec.Ingress {
			var peers []v1beta1.ClusterNetworkPolicyEgressPeer
			for _, p := range r.From {
				peers = append(peers, v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
			}
			out = append(out, cnpRule{r.Action, peers, r.Protocols})
		}
		return out
	}
	for _, r := range cnp.Spec.Egress {
		out = append(out, cnpRule{r.Action, r.To, r.Protocols})
	}
	return out
}

// subjectSelects: namespaces selects every pod of the matching namespaces; pods selects by namespace
// AND pod labels. "Exactly one field must be set"; anything else selects nothing.
func subjectSelects(s *selectors.Snapshot, subject *v1beta1.ClusterNetworkPolicySubject, pod *selectors.Pod) bool {
	switch {
	case subject.Namespaces != nil && subject.Pods == nil:
		return selectorMatches(subject.Namespaces, namespaceLabels(s, pod.Namespace))
	case subject.Pods != nil && subject.Namespaces == nil:
		return selectorMatches(&subject.Pods.NamespaceSelector, namespaceLabels(s, pod.Namespace)) &&
			selectorMatches(&subject.Pods.PodSelector, pod.Labels)
	}
	return false
}

// ruleVerdict reports the rule's effective action and whether it matches the connection. A rule
// that cannot be read fails closed: "For "Accept" rules, "fail closed" means: "treat the rule as
// matching no traffic". For "Deny" and "Pass" rules, "fail closed" means: "treat the rule as a
// 'Deny all' rule"." An unknown action is read as Deny.
func ruleVerdict(s *selectors.Snapshot, r cnpRule, dir selectors.Direction, pod *selectors.Pod, c Connection, other *selectors.Pod) (v1beta1.ClusterNetworkPolicyRuleAction, bool) {
	readable := len(r.peers) > 0
	peerMatched := false
	addr := c.Src
	if dir == selectors.Egress {
		addr = c.Dst
	}
	for i := range r.peers {
		m, ok := cnpPeerMatches(s, &r.peers[i], addr, other)
		readable = readable && ok
		peerMatched = peerMatched || m
	}
	portPod := pod // ingress: the named port is the subject's
	if dir == selectors.Egress {
		portPod = other
	}
	portMatched := len(r.protocols) == 0
	for i := range r.protocols {
		m, ok := protocolMatches(&r.protocols[i], c, portPod)
		readable = readable && ok
		portMatched = portMatched || m
	}
	action := r.action
	if action != v1beta1.ClusterNetworkPolicyRuleActionAccept && action != v1beta1.ClusterNetworkPolicyRuleActionPass {
		action = v1beta1.ClusterNetworkPolicyRuleActionDeny
	}
	if !readable {
		if action == v1beta1.ClusterNetworkPolicyRuleActionAccept {
			return action, false
		}
		return v1beta1.ClusterNetworkPolicyRuleActionDeny, true
	}
	return action, peerMatched && portMatched
}

// cnpPeerMatches reports whether a peer matches the other end, and whether it can be read at all
// (exactly one supported field, valid selectors and CIDRs). nodes and domainNames are not supported.
func cnpPeerMatches(s *selectors.Snapshot, p *v1beta1.ClusterNetworkPolicyEgressPeer, addr netip.Addr, other *selectors.Pod) (bool, bool) {
	n := 0
	for _, set := range []bool{p.Namespaces != nil, p.Pods != nil, p.Nodes != nil, p.Networks != nil, p.DomainNames != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return false, false
	}
	switch {
	case p.Namespaces != nil:
		if !validSelector(p.Namespaces) {
			return false, false
		}
		return other != nil && selectorMatches(p.Namespaces, namespaceLabels(s, other.Namespace)), true
	case p.Pods != nil:
		if !validSelector(&p.Pods.NamespaceSelector) || !validSelector(&p.Pods.PodSelector) {
			return false, false
		}
		return other != nil && selectorMatches(&p.Pods.NamespaceSelector, namespaceLabels(s, other.Namespace)) &&
			selectorMatches(&p.Pods.PodSelector, other.Labels), true
	case p.Networks != nil:
		// "cluster-internal traffic will be checked against the rule as well"
		matched := false
		for _, cidr := range p.Networks {
			prefix, err := parseCIDR(string(cidr))
			if err != nil {
				return false, false
			}
			matched = matched || prefix.Contains(addr)
		}
		return matched, len(p.Networks) > 0
	}
	return false, false
}

func validSelector(ls *metav1.LabelSelector) bool {
	_, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil
}

// protocolMatches reads one protocols entry ("Exactly one field must be set"): a protocol with an
// optional destination port number or inclusive range, or a destination named port of portPod.
func protocolMatches(p *v1beta1.ClusterNetworkPolicyProtocol, c Connection, portPod *selectors.Pod) (bool, bool) {
	type entry struct {
		protocol corev1.Protocol
		port     *v1beta1.Port
	}
	var entries []entry
	if p.TCP != nil {
		entries = append(entries, entry{corev1.ProtocolTCP, p.TCP.DestinationPort})
	}
	if p.UDP != nil {
		entries = append(entries, entry{corev1.ProtocolUDP, p.UDP.DestinationPort})
	}
	if p.SCTP != nil {
		entries = append(entries, entry{corev1.ProtocolSCTP, p.SCTP.DestinationPort})
	}
	if p.DestinationNamedPort != "" {
		if len(entries) != 0 {
			return false, false
		}
		if portPod == nil {
			return false, true
		}
		for _, cp := range portPod.Ports {
			protocol := cp.Protocol
			if protocol == "" {
				protocol = corev1.ProtocolTCP
			}
			if cp.Name == p.DestinationNamedPort && protocol == c.Protocol && cp.Number == int32(c.Port) {
				return true, true
			}
		}
		return false, true
	}
	if len(entries) != 1 {
		return false, false
	}
	e := entries[0]
	if e.port == nil {
		return e.protocol == c.Protocol, true
	}
	first, last := e.port.Number, e.port.Number
	if e.port.Range != nil {
		if e.port.Number != 0 {
			return false, false
		}
		first, last = e.port.Range.Start, e.port.Range.End
		if first >= last {
			return false, false
		}
	}
	if first < 1 || last > 65535 {
		return false, false
	}
	return e.protocol == c.Protocol && first <= int32(c.Port) && int32(c.Port) <= last, true
}
