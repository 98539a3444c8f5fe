// ClusterNetworkPolicy tiers: one chain per distinct ordered list of a tier's rules, shared by every
// local pod and direction with that list, which the pod chain jumps to around its NetworkPolicy part.

package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// tierChainName names the chain of one tier's rule list in one direction after a hash of the list:
// pods with equal lists share it.
func tierChainName(tier string, dir selectors.Direction, rules []selectors.ClusterRule) string {
	prefixes := [2]string{adminIngressChainPrefix, adminEgressChainPrefix}
	if tier == tierBaseline {
		prefixes = [2]string{baselineIngressChainPrefix, baselineEgressChainPrefix}
	}
	prefix := prefixes[0]
	if dir == selectors.Egress {
		prefix = prefixes[1]
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%+v", rules)))
	return prefix + hex.EncodeToString(sum[:6])
}

// isTierChain reports whether a chain is a ClusterNetworkPolicy tier chain.
func isTierChain(name string) bool {
	for _, prefix := range []string{adminIngressChainPrefix, adminEgressChainPrefix, baselineIngressChainPrefix, baselineEgressChainPrefix} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// The tiers, as rule comments name them.
const (
	tierAdmin    = "Admin"
	tierBaseline = "Baseline"
)

// tierChain is one tier's rule list in one direction, with the families of the pods that jump to it.
type tierChain struct {
	tier     string
	dir      selectors.Direction
	rules    []selectors.ClusterRule
	families familySet
}

// clusterTiers finds the tier chains of the isolations' pods, sets each isolation's admin and
// baseline chain names, and returns the chains. A list whose rules match nothing gets no chain.
func (c *chainCompiler) clusterTiers(isolated []podIsolation) []Chain {
	byName := map[string]*tierChain{}
	var order []string
	use := func(tier string, dir selectors.Direction, rules []selectors.ClusterRule, families familySet) string {
		if len(rules) == 0 {
			return ""
		}
		name := tierChainName(tier, dir, rules)
		tc, ok := byName[name]
		if !ok {
			tc = &tierChain{tier: tier, dir: dir, rules: rules}
			byName[name] = tc
			order = append(order, name)
		}
		tc.families |= families
		return name
	}
	for i := range isolated {
		pi := &isolated[i]
		if pi.cluster == nil {
			continue
		}
		pi.admin = use(tierAdmin, pi.dir, pi.cluster.Admin, familySetOf(pi.pod))
		// "v1.NetworkPolicy always makes a final decision for selected pods. Further evaluation
		// only happens for Pods not selected by a v1.NetworkPolicy": an isolated pod has no
		// Baseline tier.
		if pi.iso == nil {
			pi.baseline = use(tierBaseline, pi.dir, pi.cluster.Baseline, familySetOf(pi.pod))
		}
	}
	compiled := map[string][]Rule{}
	var chains []Chain
	for _, name := range order {
		tc := byName[name]
		rules := c.tierRules(tc)
		compiled[name] = rules
		if len(rules) > 0 {
			chains = append(chains, Chain{Name: name, Rules: rules})
		}
	}
	for i := range isolated {
		pi := &isolated[i]
		if len(compiled[pi.admin]) == 0 {
			pi.admin = ""
		}
		if len(compiled[pi.baseline]) == 0 {
			pi.baseline = ""
		}
	}
	return chains
}

// tierRules compiles a tier's rules in order, each for the families of the chain's pods: policies by
// priority then name, as selectors orders them, and "The relative precedence of ingress rules within
// a single CNP object (all of which share the priority) will be determined by the order in which the
// rule is written"; the first rule that matches decides. A packet that no rule matches returns to
// the pod chain. The nft rules of one ClusterNetworkPolicy rule all have its verdict, so their order among
// themselves does not matter; one that matches every family is written once.
func (c *chainCompiler) tierRules(tc *tierChain) []Rule {
	var out []Rule
	for _, r := range tc.rules {
		comment := truncateComment(fmt.Sprintf("cnp %s %s[%d] %s %s", r.Policy, tc.dir, r.Index, tc.tier, r.Action))
		verdict := clusterVerdict(r.Action)
		var written [][]Match
		for _, f := range tc.families.list() {
			for _, ms := range c.trafficMatches(tc.dir, f, traffic{anyPeer: r.AnyPeer, peers: r.Peers, allPorts: r.AllPorts, ports: r.Ports, namedPorts: r.NamedPorts}) {
				if slices.ContainsFunc(written, func(w []Match) bool { return slices.EqualFunc(w, ms, matchEqual) }) {
					continue
				}
				written = append(written, ms)
				out = append(out, Rule{Matches: ms, Verdict: verdict, Comment: comment})
			}
		}
	}
	return out
}

// clusterVerdict is the verdict of a rule's action in its tier's chain.
func clusterVerdict(a selectors.ClusterAction) Verdict {
	switch a {
	case selectors.Accept:
		// Accept "stops further rule processing of this policy direction (Ingress/Egress) and
		// accepts the traffic." The accept ends this direction's base chain; the other direction's
		// base chain still runs.
		return Verdict{Kind: Accept}
	case selectors.Pass:
		// Pass "skips rules with lower precedence in the current tier and continues processing in
		// the next tier": back to the pod chain, whose next part is the next tier.
		return Verdict{Kind: Return}
	default:
		// Deny "stops further rule processing and drops the traffic": a drop, never a reject, so a
		// denied connection times out. An action this package does not know denies too (fail
		// closed, as selectors reads it).
		return Verdict{Kind: Drop}
	}
}

// clusterJumps are the rules a pod chain starts with: the jump to its Admin tier chain and, when no
// NetworkPolicy isolates the pod in the direction, the jump to its Baseline tier chain. "Policy tiers
// are evaluated in the following order: Admin tier, NetworkPolicy tier, Baseline tier": the
// NetworkPolicy part of an isolated pod's chain comes after these jumps and ends in a drop. A packet that returns from both falls through the pod chain: "If a
// given connection wasn't allowed or denied by any of the tiers, the default kubernetes policy is
// applied, which says that all pods can communicate with each other."
func (pi *podIsolation) clusterJumps() []Rule {
	var rules []Rule
	if pi.admin != "" {
		rules = append(rules, Rule{Verdict: Verdict{Kind: Jump, Chain: pi.admin}})
	}
	if pi.baseline != "" {
		rules = append(rules, Rule{Verdict: Verdict{Kind: Jump, Chain: pi.baseline}})
	}
	return rules
}

// clusterOnlyChain is the chain of a direction of a pod that no NetworkPolicy selects, with only its
// tier jumps: what they return is allowed.
func clusterOnlyChain(pi podIsolation) Chain {
	return Chain{Name: podChainName(pi.pod, pi.dir), Rules: pi.clusterJumps()}
}
