// Audit mode (selectors.ModeAnnotation): audited policies are compiled into the pod chains without
// changing any verdict. A pod that only audited policies isolate ends its chain with a would-drop
// (counted, logged when drop logging is on, then accepted); a pod that enforced policies isolate
// jumps, after their chains, to audit variants of the audited policies' chains, whose matching
// rules count and log a would-allow and return to the pod chain's drop.

package nft

import (
	"fmt"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// AuditVerdict is what an audited policy would change: a would-drop is a connection that the
// enforced policies allow and the audited ones would deny; a would-allow one that the enforced
// policies deny and an audited rule would admit.
type AuditVerdict string

const (
	WouldDrop  AuditVerdict = "would-drop"
	WouldAllow AuditVerdict = "would-allow"
)

// Audit counter names and the would-drop log prefix: LogPrefix, LogPrefixWouldDrop and the pod
// chain's name.
const (
	auditAllowIngressCounterPrefix = "audit-allow-in_"
	auditAllowEgressCounterPrefix  = "audit-allow-eg_"
	auditDropIngressCounterPrefix  = "audit-drop-in_"
	auditDropEgressCounterPrefix   = "audit-drop-eg_"

	LogPrefixWouldDrop = "audit:"
)

// auditCounter names the counter of one verdict of one audited policy and direction.
func auditCounter(policy selectors.PolicyRef, dir selectors.Direction, verdict AuditVerdict) Counter {
	prefixes := [2]string{auditAllowIngressCounterPrefix, auditAllowEgressCounterPrefix}
	if verdict == WouldDrop {
		prefixes = [2]string{auditDropIngressCounterPrefix, auditDropEgressCounterPrefix}
	}
	prefix := prefixes[0]
	if dir == selectors.Egress {
		prefix = prefixes[1]
	}
	return Counter{
		Name:   truncatedName(prefix+policy.Namespace+"_"+policy.Name, string(verdict)+"/"+string(dir)+"/"+policy.String()),
		Labels: CounterLabels{Namespace: policy.Namespace, Direction: dir, Policy: policy.Name, Audit: verdict},
	}
}

// wouldDropChain is the chain of a direction of a pod that only audited policies isolate: their
// chains accept what they admit; what falls through is what they would drop. It is logged (when
// logging is on), counted once per audited policy, and accepted. The pod's ClusterNetworkPolicy
// tiers come first: audited policies isolate nothing, so the Baseline tier decides before them.
func (c *chainCompiler) wouldDropChain(pi podIsolation) Chain {
	chain := Chain{Name: podChainName(pi.pod, pi.dir), Rules: pi.clusterJumps()}
	for _, v := range pi.variants {
		if v.chain != "" {
			chain.Rules = append(chain.Rules, Rule{Verdict: Verdict{Kind: Jump, Chain: v.chain}})
		}
	}
	if c.dropLog != nil {
		chain.Rules = append(chain.Rules, c.dropLog.logRules(LogPrefixWouldDrop+chain.Name, familySetOf(pi.pod))...)
	}
	names := make([]string, len(pi.audit.Policies))
	for i, p := range pi.audit.Policies {
		counter := auditCounter(p, pi.dir, WouldDrop)
		c.counters[counter.Name] = counter.Labels
		chain.Rules = append(chain.Rules, Rule{Counter: counter.Name})
		names[i] = p.String()
	}
	comment := truncateComment(fmt.Sprintf("%s audited by %s: would drop", pi.dir, strings.Join(names, ", ")))
	chain.Rules = append(chain.Rules, Rule{Verdict: Verdict{Kind: Accept}, Comment: comment})
	return chain
}
