package selectors

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Tier is a ClusterNetworkPolicy tier. "Policy tiers are evaluated in the following order: Admin
// tier, NetworkPolicy tier, Baseline tier."
type Tier string

const (
	AdminTier    Tier = Tier(v1beta1.AdminTier)
	BaselineTier Tier = Tier(v1beta1.BaselineTier)
)

// ClusterAction is what a ClusterNetworkPolicy rule does with the traffic it matches.
type ClusterAction string

const (
	// Accept is final: "No further ingress ClusterNetworkPolicy or NetworkPolicy rules will be processed."
	Accept ClusterAction = ClusterAction(v1beta1.ClusterNetworkPolicyRuleActionAccept)
	// Deny is final: "Drops the selected traffic. No further ClusterNetworkPolicy or NetworkPolicy
	// rules will be processed."
	Deny ClusterAction = ClusterAction(v1beta1.ClusterNetworkPolicyRuleActionDeny)
	// Pass: "Skips all further ClusterNetworkPolicy rules in the current tier for the selected
	// traffic, and passes evaluation to the next tier."
	Pass ClusterAction = ClusterAction(v1beta1.ClusterNetworkPolicyRuleActionPass)
)

// clusterPolicy is a ClusterNetworkPolicy read into the form the resolution works with: a
// validated subject and rules whose peers are the same peers NetworkPolicy rules use, so that equal
// selectors name equal address sets.
type clusterPolicy struct {
	name     string
	tier     Tier
	priority int32
	// subject: pods whose namespace matches namespaces AND whose labels match pods. ok is false
	// when the subject cannot be read: the policy then selects no pod.
	subjectNamespaces, subjectPods parsedSelector
	subjectOK                      bool
	rules                          [2][]clusterRule // by clusterDirIndex
}

// clusterRule is one rule of a ClusterNetworkPolicy. A rule that cannot be read as written is
// either dropped (Accept) or turned into a deny of everything (Deny, Pass): see failClosed.
type clusterRule struct {
	index  int
	name   string
	action ClusterAction
	// anyPeer with ports.all is "deny all" of a fail-closed rule; a rule as written always has peers.
	anyPeer          bool
	peers            []peer
	peersID          string
	peersDescription string
	ports            rulePorts
	namedPorts       []string     // egress: ServiceSet IDs
	services         []serviceDef // egress: the definition of each of namedPorts
}

func clusterDirIndex(dir Direction) int {
	if dir == Ingress {
		return 0
	}
	return 1
}

// ClusterPolicyRef is how a ClusterNetworkPolicy is named in Problems: cluster-scoped, so no namespace.
func ClusterPolicyRef(name string) PolicyRef { return PolicyRef{Name: name} }

// readClusterPolicy validates a ClusterNetworkPolicy. ok is false when the policy has no effect at
// all (an unknown tier); every problem is reported either way.
func readClusterPolicy(cnp *v1beta1.ClusterNetworkPolicy) (*clusterPolicy, []Problem, bool) {
	c := newPolicyCompiler(ClusterPolicyRef(cnp.Name))
	cp := &clusterPolicy{name: cnp.Name, tier: Tier(cnp.Spec.Tier), priority: cnp.Spec.Priority}
	if cp.tier != AdminTier && cp.tier != BaselineTier {
		c.problem("spec.tier", fmt.Sprintf("unknown tier %q; the policy is ignored", cnp.Spec.Tier))
		return nil, c.problems.sorted(), false
	}
	if cp.priority < 0 || cp.priority > 1000 {
		// "Priority is a value from 0 to 1000": the API server rejects others; an object that slipped
		// through is still ordered by its value.
		c.problem("spec.priority", fmt.Sprintf("priority %d is outside 0-1000", cp.priority))
	}
	cp.subjectNamespaces, cp.subjectPods, cp.subjectOK = c.readSubject(&cnp.Spec.Subject)
	for i := range cnp.Spec.Ingress {
		r := &cnp.Spec.Ingress[i]
		peers := make([]clusterPeer, len(r.From))
		for j := range r.From {
			peers[j] = clusterPeer{namespaces: r.From[j].Namespaces, pods: r.From[j].Pods}
		}
		if rule, ok := c.readClusterRule(Ingress, i, r.Name, r.Action, peers, r.Protocols); ok {
			cp.rules[0] = append(cp.rules[0], rule)
		}
	}
	for i := range cnp.Spec.Egress {
		r := &cnp.Spec.Egress[i]
		peers := make([]clusterPeer, len(r.To))
		for j := range r.To {
			p := &r.To[j]
			peers[j] = clusterPeer{namespaces: p.Namespaces, pods: p.Pods, nodes: p.Nodes, networks: p.Networks, domainNames: p.DomainNames}
		}
		if rule, ok := c.readClusterRule(Egress, i, r.Name, r.Action, peers, r.Protocols); ok {
			cp.rules[1] = append(cp.rules[1], rule)
		}
	}
	return cp, c.problems.sorted(), true
}

// readSubject: "Exactly one field must be set." "Note that host-networked pods are not included in
// subject selection" (Eligible excludes them). A subject that cannot be read selects no pod.
func (c *policyCompiler) readSubject(s *v1beta1.ClusterNetworkPolicySubject) (parsedSelector, parsedSelector, bool) {
	switch {
	case s.Namespaces != nil && s.Pods == nil:
		// "Namespaces is used to select pods via namespace selectors."
		ns, err := parseSelector(s.Namespaces)
		if err != nil {
			c.problem("spec.subject.namespaces", err.Error()+"; the policy selects no pod")
			return parsedSelector{}, parsedSelector{}, false
		}
		return ns, everything(), true
	case s.Pods != nil && s.Namespaces == nil:
		// "Pods is used to select pods via namespace AND pod selectors."
		ns, err := parseSelector(&s.Pods.NamespaceSelector)
		if err != nil {
			c.problem("spec.subject.pods.namespaceSelector", err.Error()+"; the policy selects no pod")
			return parsedSelector{}, parsedSelector{}, false
		}
		pods, err := parseSelector(&s.Pods.PodSelector)
		if err != nil {
			c.problem("spec.subject.pods.podSelector", err.Error()+"; the policy selects no pod")
			return parsedSelector{}, parsedSelector{}, false
		}
		return ns, pods, true
	default:
		c.problem("spec.subject", "exactly one of namespaces and pods must be set; the policy selects no pod")
		return parsedSelector{}, parsedSelector{}, false
	}
}

// Protocols a destinationNamedPort may resolve to: the name says nothing of the protocol, so every
// container port with that name counts, whatever its protocol.
var namedPortProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// readClusterRule reads one rule. ok is false when the rule matches no traffic.
func (c *policyCompiler) readClusterRule(dir Direction, index int, name string, action v1beta1.ClusterNetworkPolicyRuleAction,
	rawPeers []clusterPeer, protocols []v1beta1.ClusterNetworkPolicyProtocol) (clusterRule, bool) {
	field := fmt.Sprintf("spec.%s[%d]", dir, index)
	rule := clusterRule{index: index, name: name, action: ClusterAction(action)}
	if rule.action != Accept && rule.action != Deny && rule.action != Pass {
		// An action we do not know can be neither Accept nor Pass, which could admit what a later
		// rule denies: the rule denies the traffic it matches.
		c.problem(field+".action", fmt.Sprintf("unknown action %q; the rule denies the traffic it matches", action))
		rule.action = Deny
	}
	readable := true
	if len(rawPeers) == 0 {
		// "This field must be defined and contain at least one item."
		c.problem(field+"."+peersField(dir), "no peers")
		readable = false
	}
	for i := range rawPeers {
		p, ok := c.readClusterPeer(&rawPeers[i], fmt.Sprintf("%s.%s[%d]", field, peersField(dir), i))
		readable = readable && ok
		rule.peers = append(rule.peers, p...)
	}
	var named []string
	rule.ports, named, readable = c.readProtocols(protocols, field+".protocols", readable)
	if !readable {
		return failClosed(rule, field, c)
	}
	rule.peers = sortedUniquePeers(rule.peers)
	rule.peersDescription = peersKey(rule.peers)
	rule.peersID = setID(addressSetKind, rule.peersDescription)
	for _, n := range named {
		for _, protocol := range namedPortProtocols {
			np := namedPort{name: n, protocol: protocol, field: field + ".protocols"}
			if dir == Ingress {
				rule.ports.named = append(rule.ports.named, np)
			} else {
				rule.services = append(rule.services, newServiceDef(false, rule.peers, np))
			}
		}
	}
	if dir == Egress {
		rule.services, rule.namedPorts = uniqueServiceDefs(rule.services)
	}
	return rule, true
}

// failClosed implements the API's answer to a rule it cannot read: "For "Accept" rules, "fail
// closed" means: "treat the rule as matching no traffic". For "Deny" and "Pass" rules, "fail
// closed" means: "treat the rule as a 'Deny all' rule"."
func failClosed(rule clusterRule, field string, c *policyCompiler) (clusterRule, bool) {
	if rule.action == Accept {
		c.problem(field, "the Accept rule cannot be read as written; it matches no traffic")
		return clusterRule{}, false
	}
	c.problem(field, fmt.Sprintf("the %s rule cannot be read as written; it denies all traffic", rule.action))
	return denyAll(rule), true
}

func denyAll(rule clusterRule) clusterRule {
	return clusterRule{index: rule.index, name: rule.name, action: Deny, anyPeer: true, ports: rulePorts{all: true}}
}

// sortedUniquePeers sorts peers by definition and drops repeats.
func sortedUniquePeers(peers []peer) []peer {
	out := make([]peer, 0, len(peers))
	for _, p := range peers {
		i, found := findPeer(out, p.canonical)
		if !found {
			out = append(out[:i], append([]peer{p}, out[i:]...)...)
		}
	}
	return out
}

func findPeer(peers []peer, canonical string) (int, bool) {
	for i, p := range peers {
		if c := strings.Compare(p.canonical, canonical); c >= 0 {
			return i, c == 0
		}
	}
	return len(peers), false
}

// compareClusterPolicies orders one tier: "Policies with lower priority values have higher
// precedence". Equal priorities are ordered by name: the API leaves their order to the
// implementation, and a fixed one keeps every node and every sync alike.
func compareClusterPolicies(a, b *clusterPolicy) int {
	if c := cmp.Compare(a.priority, b.priority); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// clusterRuleForPod is a rule as it applies to one subject pod.
func (c *policyCompiler) clusterRuleForPod(cp *clusterPolicy, cr *clusterRule, dir Direction, pod *Pod) ClusterRule {
	rule := ClusterRule{
		Policy: cp.name, Priority: cp.priority, Index: cr.index, Name: cr.name, Action: cr.action,
		AnyPeer: cr.anyPeer, Peers: cr.peersID,
		AllPorts: cr.ports.all, Ports: cr.ports.numeric, NamedPorts: cr.namedPorts,
	}
	if dir == Ingress && len(cr.ports.named) > 0 {
		// "DestinationNamedPort selects a destination port on a pod based on the ContainerPort
		// name": for ingress, a port of the subject pod itself.
		ports := slices.Clone(cr.ports.numeric)
		defined := map[string]bool{}
		for _, np := range cr.ports.named {
			for _, n := range NamedPortNumbers(pod, np.name, np.protocol) {
				ports = append(ports, PortRange{Protocol: np.protocol, First: n, Last: n})
				defined[np.name] = true
			}
		}
		rule.Ports = normalizePorts(ports)
		for _, np := range cr.ports.named {
			if !defined[np.name] {
				c.problem(np.field, fmt.Sprintf("named port %q is not defined by pod %s/%s; it matches nothing for that pod", np.name, pod.Namespace, pod.Name))
			}
		}
	}
	return rule
}
