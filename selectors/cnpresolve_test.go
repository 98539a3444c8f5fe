package selectors

import (
	"maps"
	"slices"
	"strings"
)

// resolveClusterPolicies adds the ClusterNetworkPolicy part to a fresh Model of the same snapshot
// without its ClusterNetworkPolicies: each local pod's ordered rules per direction and tier, the
// address and service sets they refer to (reusing the Model's own set where a NetworkPolicy rule
// has the same peers), and the problems. It recomputes everything from the snapshot, without the
// Resolver's indexes: tests check the Resolver against it.
func resolveClusterPolicies(s *Snapshot, m *Model) {
	c := clusterResolution{snapshot: s, model: m, problems: make(problemSet), addressSets: map[string]bool{}, serviceSets: map[string]bool{}}
	for _, set := range m.AddressSets {
		c.addressSets[set.ID] = true
	}
	for _, set := range m.ServiceSets {
		c.serviceSets[set.ID] = true
	}
	var tiers [2][]*clusterPolicy // Admin, Baseline
	for _, cnp := range s.ClusterPolicies {
		if cnp == nil {
			continue
		}
		cp, problems, ok := readClusterPolicy(cnp)
		for _, p := range problems {
			c.problems[p] = struct{}{}
		}
		if !ok {
			continue
		}
		t := 0
		if cp.tier == BaselineTier {
			t = 1
		}
		tiers[t] = append(tiers[t], cp)
	}
	for t := range tiers {
		slices.SortFunc(tiers[t], compareClusterPolicies)
	}
	pods := podsByKey(s)
	for i := range m.LocalPods {
		lp := &m.LocalPods[i]
		pod := pods[lp.Key()]
		if pod == nil {
			continue
		}
		lp.ClusterIngress = c.rulesFor(tiers, pod, Ingress)
		lp.ClusterEgress = c.rulesFor(tiers, pod, Egress)
	}
	slices.SortFunc(m.AddressSets, func(a, b AddressSet) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(m.ServiceSets, func(a, b ServiceSet) int { return strings.Compare(a.ID, b.ID) })
	m.ClusterProblems = c.problems.sorted()
}

// clusterResolution is the state of one resolveClusterPolicies.
type clusterResolution struct {
	snapshot    *Snapshot
	model       *Model
	problems    problemSet
	addressSets map[string]bool // IDs in the Model
	serviceSets map[string]bool
}

func podsByKey(s *Snapshot) map[string]*Pod {
	out := make(map[string]*Pod, len(s.Pods))
	for i := range s.Pods {
		p := &s.Pods[i]
		out[p.Namespace+"/"+p.Name] = p
	}
	return out
}

// rulesFor lists the rules of one direction that apply to a local pod, tier by tier.
func (c *clusterResolution) rulesFor(tiers [2][]*clusterPolicy, pod *Pod, dir Direction) *ClusterRules {
	var out ClusterRules
	for t, policies := range tiers {
		for _, cp := range policies {
			if !c.subjectSelects(cp, pod) {
				continue
			}
			for _, cr := range cp.rules[clusterDirIndex(dir)] {
				rule := c.ruleForPod(cp, cr, dir, pod)
				if t == 0 {
					out.Admin = append(out.Admin, rule)
				} else {
					out.Baseline = append(out.Baseline, rule)
				}
			}
		}
	}
	if out.Admin == nil && out.Baseline == nil {
		return nil
	}
	return &out
}

// subjectSelects: "Subject defines the pods to which this ClusterNetworkPolicy applies." Local pods
// are eligible already ("host-networked pods are not included in subject selection").
func (c *clusterResolution) subjectSelects(cp *clusterPolicy, pod *Pod) bool {
	if !cp.subjectOK {
		return false
	}
	return cp.subjectNamespaces.selector.Matches(NamespaceLabels(pod.Namespace, c.namespaceLabels(pod.Namespace))) &&
		cp.subjectPods.selector.Matches(labelsOf(pod))
}

func (c *clusterResolution) namespaceLabels(name string) map[string]string {
	for i := range c.snapshot.Namespaces {
		if c.snapshot.Namespaces[i].Name == name {
			return c.snapshot.Namespaces[i].Labels
		}
	}
	return nil
}

// ruleForPod is a rule as it applies to one subject pod; it makes sure the sets it names exist.
func (c *clusterResolution) ruleForPod(cp *clusterPolicy, cr clusterRule, dir Direction, pod *Pod) ClusterRule {
	pc := newPolicyCompiler(ClusterPolicyRef(cp.name))
	rule := pc.clusterRuleForPod(cp, &cr, dir, pod)
	maps.Copy(c.problems, pc.problems)
	if !cr.anyPeer {
		c.ensureAddressSet(cr)
	}
	for _, def := range cr.services {
		c.ensureServiceSet(def)
	}
	return rule
}

// peerSelects reports whether a peer selects an eligible pod, its namespace included.
func (c *clusterResolution) peerSelects(p *peer, pod *Pod) bool {
	if !Eligible(pod) {
		return false
	}
	if p.isIPBlock {
		return p.selects(pod)
	}
	if p.namespaces == nil {
		if pod.Namespace != p.scopeNamespace {
			return false
		}
	} else if !p.namespaces.selector.Matches(NamespaceLabels(pod.Namespace, c.namespaceLabels(pod.Namespace))) {
		return false
	}
	return p.selects(pod)
}

// ensureAddressSet adds the AddressSet of a rule's peers unless the Model has it: equal
// definitions have equal IDs and equal members.
func (c *clusterResolution) ensureAddressSet(cr clusterRule) {
	if c.addressSets[cr.peersID] {
		return
	}
	c.addressSets[cr.peersID] = true
	var ranges []AddrRange
	hasIPBlocks := false
	for i := range cr.peers {
		p := &cr.peers[i]
		if p.isIPBlock {
			hasIPBlocks = true
			ranges = append(ranges, p.ipRanges...)
			continue
		}
		for j := range c.snapshot.Pods {
			pod := &c.snapshot.Pods[j]
			if c.peerSelects(p, pod) {
				for _, ip := range pod.IPs {
					ranges = append(ranges, AddrRange{From: ip, To: ip})
				}
			}
		}
	}
	c.model.AddressSets = append(c.model.AddressSets, AddressSet{
		ID: cr.peersID, Description: cr.peersDescription, Ranges: normalizeRanges(ranges), HasIPBlocks: hasIPBlocks,
	})
}

// ensureServiceSet adds a ServiceSet unless the Model has it: what every destination pod the
// definition's peers select brings to its named port.
func (c *clusterResolution) ensureServiceSet(def serviceDef) {
	if c.serviceSets[def.id] {
		return
	}
	c.serviceSets[def.id] = true
	var services []Service
	for j := range c.snapshot.Pods {
		pod := &c.snapshot.Pods[j]
		if !Eligible(pod) {
			continue
		}
		if def.anyPod || slices.ContainsFunc(def.peers, func(p peer) bool { return c.peerSelects(&p, pod) }) {
			services = appendServices(services, pod, def.port)
		}
	}
	slices.SortFunc(services, compareServices)
	services = slices.Compact(services)
	c.model.ServiceSets = append(c.model.ServiceSets, ServiceSet{ID: def.id, Description: def.description, Services: services})
}
