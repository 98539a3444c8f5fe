package selectors

import (
	"fmt"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
)

// compiledRule is one rule of a policy with everything that does not depend on the selected pod
// already resolved.
type compiledRule struct {
	dir        Direction
	index      int
	anyPeer    bool
	peersID    string
	ports      rulePorts
	namedPorts []string // egress: ServiceSet IDs
}

// compileRules resolves the rules of one direction of a policy, once for all the pods it selects.
func (r *resolver) compileRules(ref PolicyRef, np *networkingv1.NetworkPolicy, dir Direction) []compiledRule {
	type rawRule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var raw []rawRule
	if dir == Ingress {
		for _, rule := range np.Spec.Ingress {
			raw = append(raw, rawRule{peers: rule.From, ports: rule.Ports})
		}
	} else {
		for _, rule := range np.Spec.Egress {
			raw = append(raw, rawRule{peers: rule.To, ports: rule.Ports})
		}
	}
	out := make([]compiledRule, len(raw))
	for i, rule := range raw {
		field := fmt.Sprintf("spec.%s[%d]", dir, i)
		cr := compiledRule{dir: dir, index: i}
		// "If this field is empty or missing, this rule matches all sources (traffic not restricted
		// by source)." Likewise for destinations.
		cr.anyPeer = len(rule.peers) == 0
		var peers []peer
		if !cr.anyPeer {
			peers = r.compilePeers(ref, rule.peers, field+"."+peersField(dir))
			cr.peersID = r.addressSet(peers)
		}
		cr.ports = r.compilePorts(ref, rule.ports, field+".ports")
		if dir == Egress {
			// An egress named port is resolved on each destination pod: the same name may be
			// different numbers on different pods.
			for _, named := range cr.ports.named {
				cr.namedPorts = append(cr.namedPorts, r.serviceSet(cr.anyPeer, peers, named))
			}
			cr.namedPorts = sortedUnique(cr.namedPorts)
		}
		out[i] = cr
	}
	return out
}

// ruleForPod is a compiled rule as it applies to one selected local pod. For ingress, named ports
// are resolved against the pod itself ("a named port on a pod" is a port of the pod being reached).
func (r *resolver) ruleForPod(ref PolicyRef, cr compiledRule, pod *Pod) Rule {
	rule := Rule{
		Policy:     ref,
		Index:      cr.index,
		AnyPeer:    cr.anyPeer,
		Peers:      cr.peersID,
		AllPorts:   cr.ports.all,
		Ports:      cr.ports.numeric,
		NamedPorts: cr.namedPorts,
	}
	if cr.dir == Egress || len(cr.ports.named) == 0 {
		return rule
	}
	ports := append([]PortRange(nil), cr.ports.numeric...)
	for _, named := range cr.ports.named {
		numbers := namedPortNumbers(pod, named.name, named.protocol)
		if len(numbers) == 0 {
			r.problem(ref, named.field, fmt.Sprintf("named port %q (%s) is not defined by pod %s/%s; it matches nothing for that pod",
				named.name, named.protocol, pod.Namespace, pod.Name))
		}
		for _, n := range numbers {
			ports = append(ports, PortRange{Protocol: named.protocol, First: n, Last: n})
		}
	}
	rule.Ports = normalizePorts(ports)
	return rule
}

func sortedUnique(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	sort.Strings(ss)
	out := ss[:1]
	for _, s := range ss[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}
