// Policy chains: the rules of one direction of one policy, as they apply to the pods jumping there.

package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// policyKey is one direction of one policy.
type policyKey struct {
	policy selectors.PolicyRef
	dir    selectors.Direction
}

// policyVariant is one direction of one policy as it applies to some local pods: its rules, which
// are the same for every pod it selects unless an ingress rule names a port that the pods define
// differently (the resolver resolves those per pod). Pods with the same rules share a chain.
type policyVariant struct {
	key      policyKey
	rules    []selectors.Rule // a run of one isolation's rules
	families familySet        // of the pods that jump to it
	next     int              // the next variant of the same key; -1 for none
	chain    string           // "" when the rules compile to nothing: no pod jumps to it
}

// policyScratch is what policyChains found for podChain, in arrays reused by the next compile.
type policyScratch struct {
	variants []policyVariant
	first    map[policyKey]int // the first variant of each key
	visits   []int             // per run of rules, in the order of the pod chains: its variant
	runs     []int             // per isolation, in the order of the pod chains: how many runs it has
	targets  []string          // scratch of nextTargets
	visit    int               // the next entry of visits to read
	iso      int               // the next entry of runs to read
}

// reset empties the scratch for the next compile, keeping its arrays.
func (ps policyScratch) reset() policyScratch {
	clear(ps.variants) // drop the model's rules
	ps.variants, ps.visits, ps.runs, ps.targets = ps.variants[:0], ps.visits[:0], ps.runs[:0], ps.targets[:0]
	if ps.first == nil {
		ps.first = map[policyKey]int{}
	}
	clear(ps.first)
	ps.visit, ps.iso = 0, 0
	return ps
}

// nextTargets returns the policy chains the next pod chain jumps to, in order. The slice is valid
// until the next call.
func (ps *policyScratch) nextTargets() []string {
	ps.targets = ps.targets[:0]
	runs := ps.runs[ps.iso]
	ps.iso++
	for _, v := range ps.visits[ps.visit : ps.visit+runs] {
		if name := ps.variants[v].chain; name != "" {
			ps.targets = append(ps.targets, name)
		}
	}
	ps.visit += runs
	return ps.targets
}

// isolations calls fn for every isolation of the model's local pods, in the order Compile makes
// their chains.
func isolations(m *selectors.Model, fn func(pod selectors.LocalPod, dir selectors.Direction, iso *selectors.Isolation)) {
	for _, pod := range m.LocalPods {
		if pod.Ingress != nil {
			fn(pod, selectors.Ingress, pod.Ingress)
		}
		if pod.Egress != nil {
			fn(pod, selectors.Egress, pod.Egress)
		}
	}
}

// policyChains appends to chains the chain of every variant of every policy selecting a local pod
// (rules compiled for the families of the pods that share it, IPv4 first), reusing the last
// compile's rules for variants whose policy rules and families did not change, and records for
// podChain which chains each pod chain jumps to.
func (c *compiler) policyChains(chains []Chain) []Chain {
	ps := &c.memo.policies
	*ps = ps.reset()
	isolations(c.in.Model, func(pod selectors.LocalPod, dir selectors.Direction, iso *selectors.Isolation) {
		fams := familySetOf(pod)
		runs := 0
		for rest := iso.Rules; len(rest) > 0; {
			n := 1
			for n < len(rest) && rest[n].Policy == rest[0].Policy {
				n++
			}
			run := rest[:n]
			rest = rest[n:]
			key := policyKey{policy: run[0].Policy, dir: dir}
			v, last := -1, -1
			if i, ok := ps.first[key]; ok {
				for ; i >= 0; i = ps.variants[i].next {
					if slices.EqualFunc(ps.variants[i].rules, run, policyRuleEqual) {
						v = i
						break
					}
					last = i
				}
			}
			if v < 0 {
				v = len(ps.variants)
				ps.variants = append(ps.variants, policyVariant{key: key, rules: run, next: -1})
				if last >= 0 {
					ps.variants[last].next = v
				} else {
					ps.first[key] = v
				}
			}
			ps.variants[v].families |= fams
			ps.visits = append(ps.visits, v)
			runs++
		}
		ps.runs = append(ps.runs, runs)
	})
	for i := range ps.variants {
		v := &ps.variants[i]
		name := c.policyChainName(v, i != ps.first[v.key])
		rules := c.policyChainRules(name, v)
		if len(rules) == 0 {
			continue
		}
		v.chain = name
		chains = append(chains, Chain{Name: name, Rules: rules})
	}
	return chains
}

// policyChainName names a variant's chain: after its policy and direction, and for variants other
// than the first one found also after its rules. Kubernetes names have no "_", so names of
// different policies cannot meet.
func (c *compiler) policyChainName(v *policyVariant, other bool) string {
	prefix := policyIngressChainPrefix
	if v.key.dir == selectors.Egress {
		prefix = policyEgressChainPrefix
	}
	ref := v.key.policy
	if !other {
		return c.name(nameKey{kind: prefix, a: ref.Namespace, b: ref.Name}, func() string {
			return truncatedName(prefix+ref.Namespace+"_"+ref.Name, ref.String())
		})
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%+v", v.rules)))
	variant := hex.EncodeToString(sum[:4])
	return truncatedName(prefix+ref.Namespace+"_"+ref.Name+"_"+variant, ref.String()+"#"+variant)
}

// policyChainRules compiles a variant's rules, or reuses what the last compile made of the same
// rules for the same families (declaring the sets they use all the same).
func (c *compiler) policyChainRules(name string, v *policyVariant) []Rule {
	if m, ok := c.memo.chains[name]; ok && m.policyRules != nil && m.families == v.families && slices.EqualFunc(m.policyRules, v.rules, policyRuleEqual) {
		c.declareVariantSets(v, m.rules)
		c.next.chains[name] = m
		return m.rules
	}
	var rules []Rule
	for _, f := range v.families.list() {
		for _, r := range v.rules {
			rules = append(rules, c.compileRule(v.key.dir, f, r)...)
		}
	}
	c.next.chains[name] = chainMemo{policyRules: cloneRules(v.rules), families: v.families, rules: rules}
	return rules
}

// policyRuleEqual compares two rules of a policy as the resolver gave them.
func policyRuleEqual(a, b selectors.Rule) bool {
	return a.Policy == b.Policy && a.Index == b.Index && a.AnyPeer == b.AnyPeer && a.Peers == b.Peers &&
		a.AllPorts == b.AllPorts && slices.Equal(a.Ports, b.Ports) && slices.Equal(a.NamedPorts, b.NamedPorts)
}

// cloneRules copies rules and the lists they hold.
func cloneRules(rules []selectors.Rule) []selectors.Rule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
		out[i].NamedPorts = slices.Clone(out[i].NamedPorts)
	}
	return out
}

// jumpsTo reports whether rules are jumps to targets, in order, then one more rule (the drop).
func jumpsTo(rules []Rule, targets []string) bool {
	if len(rules) != len(targets)+1 {
		return false
	}
	for i, t := range targets {
		if rules[i].Verdict.Kind != Jump || rules[i].Verdict.Chain != t {
			return false
		}
	}
	return true
}

// declareVariantSets declares the sets a policy variant's chain refers to, as compiling it would;
// rules are what its rules compiled to last time.
func (c *compiler) declareVariantSets(v *policyVariant, rules []Rule) {
	for _, r := range v.rules {
		c.declareSets(r, v.families)
	}
	// Port sets are named after their ports: the compiled rules name them.
	for _, r := range rules {
		for _, m := range r.Matches {
			if m, ok := m.(DestPortInSet); ok {
				c.declarePortSet(m.Set)
			}
		}
	}
}

// declareSets declares the sets one rule refers to in every family, as compileRule would.
func (c *compiler) declareSets(r selectors.Rule, families familySet) {
	for _, f := range families.list() {
		if !r.AnyPeer {
			c.peerSet(r.Peers, f)
		}
		if r.AllPorts {
			continue
		}
		for _, id := range r.NamedPorts {
			c.serviceSet(id, f)
		}
	}
}

// compileRule lowers one policy rule for one family: peers AND (all ports | one of the port ranges |
// one of the named ports). A rule that can match nothing compiles to no nft rule at all.
func (c *compiler) compileRule(dir selectors.Direction, f Family, r selectors.Rule) []Rule {
	comment := truncateComment(fmt.Sprintf("%s %s[%d]", r.Policy, dir, r.Index))
	var peer []Match
	if !r.AnyPeer {
		// The peer is the source of ingress traffic and the destination of egress traffic.
		field := SourceAddr
		if dir == selectors.Egress {
			field = DestAddr
		}
		peer = []Match{AddrInSet{Family: f, Field: field, Set: c.peerSet(r.Peers, f)}}
	}
	accept := func(ms ...Match) Rule {
		return Rule{Matches: append(slices.Clone(peer), ms...), Verdict: Verdict{Kind: Accept}, Comment: comment}
	}
	if r.AllPorts {
		return []Rule{accept()}
	}
	var out []Rule
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		ranges, all := portRangesOf(r.Ports, proto)
		switch {
		case all:
			out = append(out, accept(L4Proto{Protos: []uint8{protoNumber(proto)}}))
		case len(ranges) == 1:
			out = append(out, accept(L4Proto{Protos: []uint8{protoNumber(proto)}}, DestPortIn{Ranges: ranges}))
		case len(ranges) > 1:
			if set, ok := c.portSet(ranges); ok {
				out = append(out, accept(L4Proto{Protos: []uint8{protoNumber(proto)}}, DestPortInSet{Set: set}))
			} else {
				out = append(out, accept(L4Proto{Protos: []uint8{protoNumber(proto)}}, DestPortIn{Ranges: ranges}))
			}
		}
	}
	for _, id := range r.NamedPorts {
		// The service set may hold the named port of pods that are not peers (the API resolves a
		// named port on the destination pod, whatever made it a peer): the peer match comes first.
		out = append(out, accept(ServiceInSet{Family: f, Set: c.serviceSet(id, f)}))
	}
	return out
}

// portRangesOf returns the ranges of one protocol, sorted and merged, and whether they cover every port.
func portRangesOf(ports []selectors.PortRange, proto corev1.Protocol) ([]PortRange, bool) {
	var ranges []PortRange
	for _, p := range ports {
		if p.Protocol != proto {
			continue
		}
		if p.AllOfProtocol() {
			return nil, true
		}
		ranges = append(ranges, PortRange{First: p.First, Last: p.Last})
	}
	return mergePortRanges(ranges), false
}

func mergePortRanges(ranges []PortRange) []PortRange {
	slices.SortFunc(ranges, func(a, b PortRange) int { return int(a.First) - int(b.First) })
	var out []PortRange
	for _, r := range ranges {
		if n := len(out); n > 0 && int(r.First) <= int(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

func protoNumber(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return ProtoUDP
	case corev1.ProtocolSCTP:
		return ProtoSCTP
	default:
		return ProtoTCP
	}
}
