package selectors

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
)

// compiledRule is one rule of a policy with everything that does not depend on the selected pod
// already resolved.
type compiledRule struct {
	dir     Direction
	index   int
	anyPeer bool
	// peers are the understood peers when anyPeer is false; peersID and peersDescription name the
	// AddressSet of their union.
	peers            []peer
	peersID          string
	peersDescription string
	ports            rulePorts
	namedPorts       []string     // egress: ServiceSet IDs, sorted and unique
	services         []serviceDef // egress: the definition of each of namedPorts, in the same order
}

// compileRules resolves the rules of one direction of a policy, once for all the pods it selects.
// It names the sets the rules refer to without building them: that depends on the cluster, this
// only on the policy.
func (c *policyCompiler) compileRules(np *networkingv1.NetworkPolicy, dir Direction) []compiledRule {
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
		if !cr.anyPeer {
			cr.peers = c.compilePeers(rule.peers, field+"."+peersField(dir))
			cr.peersDescription = peersKey(cr.peers)
			cr.peersID = setID(addressSetKind, cr.peersDescription)
		}
		cr.ports = c.compilePorts(rule.ports, field+".ports")
		if dir == Egress {
			// An egress named port is resolved on each destination pod: the same name may be
			// different numbers on different pods.
			for _, named := range cr.ports.named {
				cr.services = append(cr.services, newServiceDef(cr.anyPeer, cr.peers, named))
			}
			cr.services, cr.namedPorts = uniqueServiceDefs(cr.services)
		}
		out[i] = cr
	}
	return out
}

// ruleForPod is a compiled rule as it applies to one selected local pod. For ingress, named ports
// are resolved against the pod itself ("a named port on a pod" is a port of the pod being reached).
func (c *policyCompiler) ruleForPod(cr compiledRule, pod *Pod) Rule {
	rule := Rule{
		Policy:     c.ref,
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
		numbers := NamedPortNumbers(pod, named.name, named.protocol)
		if len(numbers) == 0 {
			c.problem(named.field, fmt.Sprintf("named port %q (%s) is not defined by pod %s/%s; it matches nothing for that pod",
				named.name, named.protocol, pod.Namespace, pod.Name))
		}
		for _, n := range numbers {
			ports = append(ports, PortRange{Protocol: named.protocol, First: n, Last: n})
		}
	}
	rule.Ports = normalizePorts(ports)
	return rule
}
