// Pod chains: one per isolated local pod and direction, jumping to its policies' chains, and the
// verdict maps that send each local pod's traffic there.

package nft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// podChain compiles one direction of one isolated pod: the jump to its Admin tier chain, if any (see
// clusterJumps), a jump to the chain of each selecting policy whose rules can match something, then
// drop. The policies' rules are in policy chains, so that a
// policy edit rewrites the policy's rules once, not every chain of every pod it selects together
// with the rules of the other policies selecting them. The drop updates the default deny's counter;
// when dl logs the pod, rate-limited log rules come right before it. Only new connections reach a pod
// chain: the egress and ingress chains accept established traffic before their dispatch.
func podChain(pi podIsolation, counter string, dl *DropLog) Chain {
	chain := Chain{Name: podChainName(pi.pod, pi.dir), Rules: pi.clusterJumps()}
	for _, v := range pi.variants {
		if v.chain != "" {
			chain.Rules = append(chain.Rules, Rule{Verdict: Verdict{Kind: Jump, Chain: v.chain}})
		}
	}
	if dl.logsPod(pi.pod) {
		chain.Rules = append(chain.Rules, dl.logRules(chain.Name, familySetOf(pi.pod))...)
	}
	chain.Rules = append(chain.Rules, Rule{Counter: counter, Verdict: Verdict{Kind: Drop}, Comment: dropComment(pi.dir, pi.iso)})
	return chain
}

func dropComment(dir selectors.Direction, iso *selectors.Isolation) string {
	names := make([]string, len(iso.Policies))
	for i, p := range iso.Policies {
		names[i] = p.String()
	}
	return truncateComment(fmt.Sprintf("%s isolated by %s", dir, strings.Join(names, ", ")))
}

// dispatchMapsOf returns the verdict maps of dispatchMaps, sorted by name: each address of an
// isolated pod, or of a pod with ClusterNetworkPolicy rules, goes to that pod's chain of the
// direction.
func dispatchMapsOf(isolated []podIsolation) []Map {
	maps := make([]Map, len(dispatchMaps))
	for i, d := range dispatchMaps {
		maps[i] = Map{Name: d.name, Type: addrKey(d.family), Comment: d.comment}
	}
	for _, pi := range isolated {
		name := podChainName(pi.pod, pi.dir)
		for _, ip := range pi.pod.IPs {
			m := &maps[dispatchIndex(pi.dir, FamilyOf(ip))]
			m.Elements = append(m.Elements, MapElement{Key: ip, Verdict: Verdict{Kind: Goto, Chain: name}})
		}
	}
	for i := range maps {
		slices.SortFunc(maps[i].Elements, func(a, b MapElement) int { return a.Key.Compare(b.Key) })
	}
	slices.SortFunc(maps, func(a, b Map) int { return strings.Compare(a.Name, b.Name) })
	return maps
}
