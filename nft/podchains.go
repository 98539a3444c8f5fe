// Pod chains: one per isolated local pod and direction, jumping to its policies' chains.

package nft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// podChain compiles one direction of one isolated pod: a jump to the chain of each selecting policy
// whose rules can match something, then drop. The policies' rules are in policy chains (see
// policyChains), so that a policy edit rewrites the policy's rules once, not every chain of every pod
// it selects together with the rules of the other policies selecting them.
func (c *compiler) podChain(pod selectors.LocalPod, dir selectors.Direction, iso *selectors.Isolation) Chain {
	prefix := podIngressChainPrefix
	if dir == selectors.Egress {
		prefix = podEgressChainPrefix
	}
	chain := Chain{Name: c.name(nameKey{kind: prefix, a: pod.Namespace, b: pod.Name}, func() string {
		return truncatedName(prefix+pod.Namespace+"_"+pod.Name, pod.Key())
	})}
	// The jumps this chain makes, from the variants policyChains recorded for it in this order.
	targets := c.memo.policies.nextTargets()
	// The chain is its jumps and a drop naming the selecting policies: equal jumps and policies make
	// an equal chain, whichever isolation they come from (the resolver makes a new one for every
	// change of a pod's policies' rules).
	if m, ok := c.memo.chains[chain.Name]; ok && m.policyRules == nil && slices.Equal(m.policies, iso.Policies) && jumpsTo(m.rules, targets) {
		chain.Rules = m.rules
		c.next.chains[chain.Name] = m
		return chain
	}
	for _, target := range targets {
		chain.Rules = append(chain.Rules, Rule{Verdict: Verdict{Kind: Jump, Chain: target}})
	}
	chain.Rules = append(chain.Rules, Rule{Verdict: Verdict{Kind: Drop}, Comment: dropComment(dir, iso)})
	c.next.chains[chain.Name] = chainMemo{policies: slices.Clone(iso.Policies), rules: chain.Rules}
	return chain
}

func dropComment(dir selectors.Direction, iso *selectors.Isolation) string {
	names := make([]string, len(iso.Policies))
	for i, p := range iso.Policies {
		names[i] = p.String()
	}
	return truncateComment(fmt.Sprintf("%s isolated by %s", dir, strings.Join(names, ", ")))
}
