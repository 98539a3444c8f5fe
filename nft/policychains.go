// Policy chains: the rules of one direction of one policy, as they apply to the pods jumping there.

package nft

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// chainCompiler compiles the pod and policy chains and the verdict maps of one model, and records
// which sets their rules refer to.
type chainCompiler struct {
	model *selectors.Model
	// podIfacePrefix is CompileInput.PodInterfacePrefix.
	podIfacePrefix string
	// podDenyCounters is CompileInput.PodDenyCounters.
	podDenyCounters bool
	// dropLog is CompileInput.DropLog.
	dropLog *DropLog
	refs    map[string]setRef // by set name
	// counters are the counters the chains' rules update, by name.
	counters map[string]CounterLabels
	// last are the policy chains of the previous compile, by name; next are this compile's.
	last, next map[string]policyChainMemo
	// compiling records the sets the policy chain being compiled refers to.
	compiling *policyChainMemo
}

// policyChainMemo is a policy chain as a compile made it: what it was compiled from (private
// copies), its rules and the sets they refer to. A variant of the same name, rules and families
// compiles to the same rules.
type policyChainMemo struct {
	rules    []selectors.Rule
	logged   bool
	audit    bool     // the variant's accepts are would-allow records (policyVariant.audit)
	dropLog  *DropLog // what the logged rules were compiled with (nil: not logged, or logging off)
	families familySet
	compiled []Rule
	refs     map[string]setRef
	counters map[string]CounterLabels // the counters the rules update
	collided bool                     // a port set's name was taken: the rules match those ports in an anonymous set
}

// logsRecords reports whether the chain's rules depend on the drop log's settings.
func (m *policyChainMemo) logsRecords() bool { return m.logged || m.audit }

// policyKey is one direction of one policy.
type policyKey struct {
	policy selectors.PolicyRef
	dir    selectors.Direction
}

// policyVariant is one direction of one policy as it applies to some local pods: its rules, which
// are the same for every pod it selects unless an ingress rule names a port that the pods define
// differently (the resolver resolves those per pod). Pods with the same rules share a chain.
type policyVariant struct {
	key    policyKey
	rules  []selectors.Rule // a run of one isolation's rules
	first  bool             // the first variant of its key found: named after the policy alone
	logged bool             // logs the first packet of each connection it accepts (DropLog.AllPods)
	// audit: an audited policy's rules for pods that enforced policies isolate: where a rule would
	// admit, the variant counts (and logs) a would-allow and returns instead of accepting.
	audit    bool
	families familySet // of the pods that jump to it
	chain    string    // "" when the rules compile to nothing: no pod jumps to it
}

// podIsolation is one isolated direction of one local pod, with the policy variants it jumps to:
// the enforced policies' (iso), then the audited policies' (audit). A pod isolated only by audited
// policies (iso nil) jumps to their plain variants and ends with a would-drop instead of a drop.
type podIsolation struct {
	pod      selectors.LocalPod
	dir      selectors.Direction
	iso      *selectors.Isolation // nil when only audited policies select the pod
	audit    *selectors.Isolation // nil when no audited policy selects the pod
	variants []*policyVariant
	// cluster are the pod's ClusterNetworkPolicy rules of the direction (nil: none); admin and
	// baseline name the tier chains the pod chain jumps to ("" for none, see clusterJumps).
	cluster         *selectors.ClusterRules
	admin, baseline string
}

// compile returns every chain (base chains first in declaration order, then the others sorted by
// name) and the verdict maps (sorted by name).
func (c *chainCompiler) compile() ([]Chain, []Map) {
	isolated, variants := policyVariants(c.model, c.dropLog.logsAccepts)
	chains := slices.Clone(staticChains(c.podIfacePrefix, c.dropLog))
	chains = append(chains, c.clusterTiers(isolated)...)
	c.next = make(map[string]policyChainMemo, len(variants))
	c.counters = map[string]CounterLabels{}
	for _, v := range variants {
		name := policyChainName(v)
		rules := c.policyChainRules(name, v)
		if len(rules) == 0 {
			continue
		}
		v.chain = name
		chains = append(chains, Chain{Name: name, Rules: rules})
	}
	for _, pi := range isolated {
		switch {
		case pi.iso == nil && pi.audit == nil:
			chains = append(chains, clusterOnlyChain(pi))
			continue
		case pi.iso == nil:
			chains = append(chains, c.wouldDropChain(pi))
			continue
		}
		deny := denyCounter(pi.pod, pi.dir, c.podDenyCounters)
		c.counters[deny.Name] = deny.Labels
		chains = append(chains, podChain(pi, deny.Name, c.dropLog))
	}
	slices.SortFunc(chains[len(baseChains):], func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	return chains, dispatchMapsOf(isolated)
}

// policyChainRules compiles a variant's rules for the families of its pods, IPv4 first, or takes
// what the previous compile made of the same rules and families.
func (c *chainCompiler) policyChainRules(name string, v *policyVariant) []Rule {
	if m, ok := c.last[name]; ok && !m.collided && m.families == v.families && slices.EqualFunc(m.rules, v.rules, policyRuleEqual) &&
		m.logged == v.logged && m.audit == v.audit && (!m.logsRecords() || limitsEqual(m.dropLog, c.dropLog)) && c.adopt(m.refs) {
		c.next[name] = m
		maps.Copy(c.counters, m.counters)
		return m.compiled
	}
	memo := policyChainMemo{rules: cloneRules(v.rules), logged: v.logged, audit: v.audit, families: v.families, refs: map[string]setRef{}, counters: map[string]CounterLabels{}}
	if memo.logsRecords() && c.dropLog != nil {
		dl := *c.dropLog
		memo.dropLog = &dl
	}
	c.compiling = &memo
	for i, f := range v.families.list() {
		for _, r := range v.rules {
			memo.compiled = append(memo.compiled, c.compileRule(v.key.dir, f, r, v, i == 0)...)
		}
	}
	c.compiling = nil
	c.next[name] = memo
	maps.Copy(c.counters, memo.counters)
	return memo.compiled
}

// adopt records refs as this compile's, unless a port set's name among them is taken by other ports.
func (c *chainCompiler) adopt(refs map[string]setRef) bool {
	for name, ref := range refs {
		if taken, ok := c.refs[name]; ok && !slices.Equal(taken.ports, ref.ports) {
			return false
		}
	}
	maps.Copy(c.refs, refs)
	return true
}

// refer records that the rules being compiled refer to the set of a name.
func (c *chainCompiler) refer(name string, ref setRef) {
	c.refs[name] = ref
	if c.compiling != nil {
		c.compiling.refs[name] = ref
	}
}

// cloneRules copies rules and the lists they hold: the model's arrays are not ours to keep.
func cloneRules(rules []selectors.Rule) []selectors.Rule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
		out[i].NamedPorts = slices.Clone(out[i].NamedPorts)
	}
	return out
}

// policyVariants splits the rules of every isolation of the model's local pods into runs of one
// policy, and finds the variants of each policy and direction: runs with equal rules share one.
// Pods whose allowed connections are logged (logged) jump to variants of their own. It returns the
// isolations in the order of the model's local pods (ingress first), and the variants in the order
// they were found.
//
// The audited policies' rules come after the enforced ones: as audit variants when enforced
// policies isolate the pod too, else as plain variants (what they admit, nothing enforced denies).
func policyVariants(m *selectors.Model, logged func(selectors.LocalPod) bool) ([]podIsolation, []*policyVariant) {
	var isolated []podIsolation
	var variants []*policyVariant
	byKey := map[policyKey][]*policyVariant{}
	// add appends the variants of a list of rules (sorted by policy) to pi's.
	add := func(pi *podIsolation, rules []selectors.Rule, logsAccepts, audit bool) {
		for rest := rules; len(rest) > 0; {
			n := 1
			for n < len(rest) && rest[n].Policy == rest[0].Policy {
				n++
			}
			run := rest[:n]
			rest = rest[n:]
			key := policyKey{policy: run[0].Policy, dir: pi.dir}
			i := slices.IndexFunc(byKey[key], func(v *policyVariant) bool {
				return v.logged == logsAccepts && v.audit == audit && slices.EqualFunc(v.rules, run, policyRuleEqual)
			})
			var v *policyVariant
			if i >= 0 {
				v = byKey[key][i]
			} else {
				v = &policyVariant{key: key, rules: run, logged: logsAccepts, audit: audit, first: len(byKey[key]) == 0}
				byKey[key] = append(byKey[key], v)
				variants = append(variants, v)
			}
			v.families |= familySetOf(pi.pod)
			pi.variants = append(pi.variants, v)
		}
	}
	for _, pod := range m.LocalPods {
		for _, dir := range []selectors.Direction{selectors.Ingress, selectors.Egress} {
			iso, audit, cluster := pod.Ingress, pod.AuditIngress, pod.ClusterIngress
			if dir == selectors.Egress {
				iso, audit, cluster = pod.Egress, pod.AuditEgress, pod.ClusterEgress
			}
			if iso == nil && audit == nil && cluster == nil {
				continue
			}
			pi := podIsolation{pod: pod, dir: dir, iso: iso, audit: audit, cluster: cluster}
			if iso != nil {
				add(&pi, iso.Rules, logged(pod), false)
			}
			if audit != nil {
				// A pod that only audited policies isolate is not isolated: what their rules admit
				// is admitted, without naming them as the admitting rule.
				add(&pi, audit.Rules, false, iso != nil)
			}
			isolated = append(isolated, pi)
		}
	}
	return isolated, variants
}

// policyRuleEqual compares two rules of a policy as the resolver gave them.
func policyRuleEqual(a, b selectors.Rule) bool {
	return a.Policy == b.Policy && a.Index == b.Index && a.AnyPeer == b.AnyPeer && a.Peers == b.Peers &&
		a.AllPorts == b.AllPorts && slices.Equal(a.Ports, b.Ports) && slices.Equal(a.NamedPorts, b.NamedPorts)
}

// compileRule compiles one rule of a variant for one family: accepts updating the rule's counter,
// each preceded, when the variant is logged, by a rate-limited log rule whose prefix names the
// counter. An audit variant counts, and logs when logging is on, a would-allow and returns instead.
// firstFamily says f is the first family the variant is compiled for.
func (c *chainCompiler) compileRule(dir selectors.Direction, f Family, r selectors.Rule, v *policyVariant, firstFamily bool) []Rule {
	comment := truncateComment(fmt.Sprintf("%s %s[%d]", r.Policy, dir, r.Index))
	counter := ruleCounter(r, dir)
	verdict := Verdict{Kind: Accept}
	logged := v.logged
	if v.audit {
		counter = auditCounter(r.Policy, dir, WouldAllow)
		verdict = Verdict{Kind: Return}
		logged = c.dropLog != nil
		comment = truncateComment(fmt.Sprintf("%s %s[%d] audited: would allow", r.Policy, dir, r.Index))
	}
	var out []Rule
	accept := func(matches []Match) []Rule {
		c.compiling.counters[counter.Name] = counter.Labels
		var rules []Rule
		switch {
		case logged && r.AnyPeer && !hasServiceMatch(matches):
			// The rule matches packets of every family: its log rules (whose limits are per family)
			// must all come before it, or the first family's accept would take the other's packets.
			if !firstFamily {
				return nil
			}
			for _, lf := range v.families.list() {
				rules = append(rules, c.dropLog.logRulesOf(lf, LogPrefix+counter.Name, matches...)...)
			}
		case logged:
			rules = c.dropLog.logRulesOf(f, LogPrefix+counter.Name, matches...)
		}
		return append(rules, Rule{Matches: matches, Counter: counter.Name, Verdict: verdict, Comment: comment})
	}
	for _, matches := range c.trafficMatches(dir, f, trafficOf(r)) {
		out = append(out, accept(matches)...)
	}
	return out
}

// traffic is what a rule matches, NetworkPolicy's or ClusterNetworkPolicy's: peers AND one of the
// ports (see selectors.Rule).
type traffic struct {
	anyPeer    bool
	peers      string
	allPorts   bool
	ports      []selectors.PortRange
	namedPorts []string
}

func trafficOf(r selectors.Rule) traffic {
	return traffic{anyPeer: r.AnyPeer, peers: r.Peers, allPorts: r.AllPorts, ports: r.Ports, namedPorts: r.NamedPorts}
}

// trafficMatches lowers what a rule matches in one family and direction: one list of matches per nft
// rule, each the peer match (unless any peer) and one protocol's ports or one named port. No list
// means the rule matches nothing.
func (c *chainCompiler) trafficMatches(dir selectors.Direction, f Family, t traffic) [][]Match {
	var peer []Match
	if !t.anyPeer {
		// The peer is the source of ingress traffic and the destination of egress traffic.
		field := SourceAddr
		if dir == selectors.Egress {
			field = DestAddr
		}
		peer = []Match{AddrInSet{Family: f, Field: field, Set: c.peerSet(t.peers, f)}}
	}
	if t.allPorts {
		return [][]Match{peer}
	}
	var out [][]Match
	with := func(ms ...Match) { out = append(out, append(slices.Clone(peer), ms...)) }
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		ranges, all := portRangesOf(t.ports, proto)
		l4 := L4Proto{Protos: []uint8{protoNumber(proto)}}
		switch {
		case all:
			with(l4)
		case len(ranges) == 1:
			with(l4, DestPortIn{Ranges: ranges})
		case len(ranges) > 1:
			if set, ok := c.portSet(ranges); ok {
				with(l4, DestPortInSet{Set: set})
			} else {
				with(l4, DestPortIn{Ranges: ranges})
			}
		}
	}
	for _, id := range t.namedPorts {
		// The service set may hold the named port of pods that are not peers (the API resolves a
		// named port on the destination pod, whatever made it a peer): the peer match comes first.
		with(ServiceInSet{Family: f, Set: c.serviceSet(id, f)})
	}
	return out
}

// hasServiceMatch reports whether ms match a service set, which is of one family.
func hasServiceMatch(ms []Match) bool {
	return slices.ContainsFunc(ms, func(m Match) bool { _, ok := m.(ServiceInSet); return ok })
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

// peerSet returns the name of the family's half of an AddressSet, and records the reference.
func (c *chainCompiler) peerSet(id string, f Family) string {
	name := setName(peerSetPrefix, id, f)
	c.refer(name, setRef{kind: peerSetPrefix, id: id, family: f})
	return name
}

// serviceSet returns the name of the family's half of a ServiceSet, and records the reference.
func (c *chainCompiler) serviceSet(id string, f Family) string {
	name := setName(serviceSetPrefix, id, f)
	c.refer(name, setRef{kind: serviceSetPrefix, id: id, family: f})
	return name
}

// portSet returns the name of the port set holding ranges (sorted, disjoint), and records the
// reference. Rules with the same ports share one set, named after the ports, whatever their policy
// or family. Several ports could be an anonymous set in each rule, as nft writes `tcp dport { 80,
// 443 }`, but the kernel pays for every set of a table on each set it looks up by name, and more
// for an anonymous set (it walks the whole transaction to bind one).
//
// Two lists of ports whose names collide (48 bits of a hash) cannot share a set: the second one is
// not given a set (ok false) and its rule keeps an anonymous set.
func (c *chainCompiler) portSet(ranges []PortRange) (name string, ok bool) {
	name, _ = portSetName(ranges)
	if ref, found := c.refs[name]; found && !slices.Equal(ref.ports, ranges) {
		if c.compiling != nil {
			c.compiling.collided = true
		}
		return "", false
	}
	c.refer(name, setRef{kind: portSetPrefix, ports: ranges})
	return name, true
}
