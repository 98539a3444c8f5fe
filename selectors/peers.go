package selectors

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peer is one understood NetworkPolicyPeer. A peer that cannot be understood is never built: it
// matches nothing, and leaving it out of an OR changes nothing.
type peer struct {
	// canonical is the peer's definition; equal definitions select equal addresses.
	canonical string

	isIPBlock bool
	ipRanges  []AddrRange    // cidr minus every except, when isIPBlock
	cidr      netip.Prefix   // the ipBlock's cidr and excepts as read, when isIPBlock
	excepts   []netip.Prefix // in the order written

	// scopeNamespace is the policy's namespace when namespaceSelector is absent.
	scopeNamespace string
	namespaces     *parsedSelector // nil: only scopeNamespace
	pods           parsedSelector  // "{}" when podSelector is absent
}

// peersField names a rule's peer list: "from" for ingress, "to" for egress.
func peersField(dir Direction) string {
	if dir == Ingress {
		return "from"
	}
	return "to"
}

// compilePeers understands the peers of one rule and returns their canonical definitions, sorted
// and deduplicated, reporting what cannot be understood.
func (c *policyCompiler) compilePeers(peers []networkingv1.NetworkPolicyPeer, field string) []peer {
	out := make([]peer, 0, len(peers))
	for i := range peers {
		if p, ok := c.compilePeer(&peers[i], fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].canonical < out[j].canonical })
	dedup := out[:0]
	for i, p := range out {
		if i == 0 || p.canonical != out[i-1].canonical {
			dedup = append(dedup, p)
		}
	}
	return dedup
}

func (c *policyCompiler) compilePeer(np *networkingv1.NetworkPolicyPeer, field string) (peer, bool) {
	hasSelector := np.PodSelector != nil || np.NamespaceSelector != nil
	switch {
	case np.IPBlock != nil && hasSelector:
		// "ipBlock ... If this field is set then neither of the other fields can be."
		c.problem(field, "ipBlock cannot be combined with podSelector or namespaceSelector; the peer matches nothing")
		return peer{}, false
	case np.IPBlock != nil:
		return c.compileIPBlock(np.IPBlock, field+".ipBlock")
	case !hasSelector:
		c.problem(field, "peer sets none of podSelector, namespaceSelector and ipBlock; it matches nothing")
		return peer{}, false
	}

	pods := everything()
	// "podSelector ... if present but empty, it selects all pods." Absent is no constraint.
	if np.PodSelector != nil {
		sel, err := parseSelector(np.PodSelector)
		if err != nil {
			c.problem(field+".podSelector", err.Error()+"; the peer matches nothing")
			return peer{}, false
		}
		pods = sel
	}
	if np.NamespaceSelector == nil {
		// "Otherwise it selects the pods matching podSelector in the policy's own namespace."
		return namespacedPeer(c.ref.Namespace, pods), true
	}
	// "If podSelector is also set, then the NetworkPolicyPeer as a whole selects the pods matching
	// podSelector in the namespaces selected by namespaceSelector. Otherwise it selects all pods in
	// the namespaces selected by namespaceSelector."
	namespaces, err := parseSelector(np.NamespaceSelector)
	if err != nil {
		c.problem(field+".namespaceSelector", err.Error()+"; the peer matches nothing")
		return peer{}, false
	}
	return crossNamespacePeer(namespaces, pods), true
}

// everything is the empty selector, which selects everything.
func everything() parsedSelector {
	return parsedSelector{selector: labels.Everything(), canonical: "{}"}
}

// namespacedPeer selects the pods of one namespace that a pod selector matches.
func namespacedPeer(namespace string, pods parsedSelector) peer {
	return peer{canonical: fmt.Sprintf("namespace=%s pods=%s", namespace, pods.canonical), scopeNamespace: namespace, pods: pods}
}

// crossNamespacePeer selects the pods a pod selector matches in the namespaces a namespace
// selector matches.
func crossNamespacePeer(namespaces, pods parsedSelector) peer {
	return peer{canonical: fmt.Sprintf("namespaces=%s pods=%s", namespaces.canonical, pods.canonical), namespaces: &namespaces, pods: pods}
}

// peersKey is the canonical definition of a whole peer list (OR of its peers).
func peersKey(peers []peer) string {
	if len(peers) == 0 {
		return "nothing"
	}
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.canonical
	}
	return strings.Join(parts, " | ")
}
