// The static part of our table, declared as data: names, base chains, verdict maps and the chains
// every ruleset has.

package nft

import (
	"sync"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// The static skeleton of our table. Everything that changes with pods and policies is a per-pod chain,
// a peer set, or an element of one of the sets and maps below.
const (
	// Base chains. Egress and ingress are separate base chains on the forward hook, at different
	// priorities: an accept in the egress chain ends only that base chain, so same-node traffic is
	// checked against the source pod's egress AND then the destination pod's ingress.
	chainEgressForward  = "egress-forward"  // hook forward, priority filter: pod -> anywhere but its node
	chainEgressInput    = "egress-input"    // hook input, priority filter: pod -> its own node
	chainIngressForward = "ingress-forward" // hook forward, priority filter + 10: anyone -> local pod

	// Regular chains the base chains jump to.
	chainEgress  = "egress"
	chainIngress = "ingress"
	// chainEgressChecked is where egress continues once the source address is known to be genuine.
	chainEgressChecked = "egress-checked"

	// Verdict maps: local pod address -> goto that pod's chain, for pods isolated in that direction.
	mapEgressPodsV4  = "egress-pods-v4"
	mapEgressPodsV6  = "egress-pods-v6"
	mapIngressPodsV4 = "ingress-pods-v4"
	mapIngressPodsV6 = "ingress-pods-v6"

	// Anti-spoofing: which host interfaces lead to local pods, and which address each may send from.
	setPodIfaces       = "pod-ifaces"
	setPodIfaceAddrsV4 = "pod-iface-addrs-v4"
	setPodIfaceAddrsV6 = "pod-iface-addrs-v6"
	setPodAddrsV4      = "pod-addrs-v4"
	setPodAddrsV6      = "pod-addrs-v6"

	// Prefixes of dynamic names.
	podIngressChainPrefix    = "in_"
	podEgressChainPrefix     = "eg_"
	policyIngressChainPrefix = "pi_"
	policyEgressChainPrefix  = "pe_"
	peerSetPrefix            = "peers_"
	serviceSetPrefix         = "svc_"
	portSetPrefix            = "ports_"

	// ingressPriorityOffset places the ingress base chain after the egress one on the forward hook.
	ingressPriorityOffset = 10

	// maxNameLen keeps dynamic names readable; longer ones are truncated and suffixed with a hash.
	maxNameLen = 64
	// maxCommentLen is below the kernel's limit on rule user data.
	maxCommentLen = 128
)

// ndTypes are the ICMPv6 neighbour discovery messages: always accepted, or IPv6 stops working.
var ndTypes = []uint8{ICMPv6RouterSolicit, ICMPv6RouterAdvert, ICMPv6NeighborSolicit, ICMPv6NeighborAdvert, ICMPv6Redirect}

// baseChains declares the hooks we attach to.
var baseChains = []struct {
	name, target string
	hook         BaseHook
}{
	{chainEgressForward, chainEgress, BaseHook{Hook: HookForward, Priority: 0}},
	{chainEgressInput, chainEgress, BaseHook{Hook: HookInput, Priority: 0}},
	{chainIngressForward, chainIngress, BaseHook{Hook: HookForward, Priority: ingressPriorityOffset}},
}

// dispatchMaps declares the verdict maps, per direction and family.
var dispatchMaps = [...]struct {
	dir     selectors.Direction
	family  Family
	field   Field
	name    string
	comment string
}{
	{selectors.Egress, IPv4, SourceAddr, mapEgressPodsV4, "local pods isolated for egress"},
	{selectors.Egress, IPv6, SourceAddr, mapEgressPodsV6, "local pods isolated for egress"},
	{selectors.Ingress, IPv4, DestAddr, mapIngressPodsV4, "local pods isolated for ingress"},
	{selectors.Ingress, IPv6, DestAddr, mapIngressPodsV6, "local pods isolated for ingress"},
}

// egressChains hold what applies to every packet leaving a local pod, before its own policy: the
// source address must be genuine, then tracked connections pass and the pod's policy judges the rest.
//
// The order serves the common packet: an IPv4 packet from a pod's own interface with its own address
// is recognised by one lookup and moves on. Everything else meets the checks one by one; a packet is
// dropped as spoofed when it comes from a pod interface with an address that is not that pod's, or
// from any other interface with a local pod's address.
func egressChains(podIfacePrefix string) []Chain {
	checked := Verdict{Kind: Goto, Chain: chainEgressChecked}
	rules := []Rule{
		{Matches: []Match{IfnameAddrInSet{Family: IPv4, Set: setPodIfaceAddrsV4}}, Verdict: checked},
		// Neighbour discovery uses link-local and unspecified sources, which anti-spoofing would
		// drop, and must not meet a pod's egress policy either.
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		{Matches: []Match{IfnameAddrInSet{Family: IPv6, Set: setPodIfaceAddrsV6}}, Verdict: checked},
		// Not a pod's own interface and address: a pod sends only from its own addresses ...
		{Matches: []Match{IfnameInSet{Set: setPodIfaces}}, Verdict: Verdict{Kind: Drop}, Comment: "spoofed source from a pod interface"},
	}
	rules = append(rules, failClosedEgress(podIfacePrefix)...)
	rules = append(rules,
		// ... and nobody else sends from them.
		Rule{Matches: []Match{AddrInSet{Family: IPv4, Field: SourceAddr, Set: setPodAddrsV4}}, Verdict: Verdict{Kind: Drop}, Comment: "local pod address from a foreign interface"},
		Rule{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: setPodAddrsV6}}, Verdict: Verdict{Kind: Drop}, Comment: "local pod address from a foreign interface"},
		Rule{Verdict: checked},
	)
	return []Chain{
		{Name: chainEgress, Rules: rules},
		{Name: chainEgressChecked, Rules: []Rule{
			// Replies of allowed connections, and ICMP errors about them.
			{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
			{VMap: &VMapLookup{Family: IPv4, Field: SourceAddr, Map: mapEgressPodsV4}},
			{VMap: &VMapLookup{Family: IPv6, Field: SourceAddr, Map: mapEgressPodsV6}},
		}},
	}
}

// defaultStaticChains are the static chains without the fail-closed mode, built once and shared by
// every ruleset (rulesets are read-only).
var defaultStaticChains = sync.OnceValue(func() []Chain { return buildStaticChains("") })

// staticChains are the chains every ruleset has with the same rules: the base chains, the egress
// chains and the ingress chain. podIfacePrefix turns the fail-closed mode on (see failClosedEgress).
func staticChains(podIfacePrefix string) []Chain {
	if podIfacePrefix == "" {
		return defaultStaticChains()
	}
	return buildStaticChains(podIfacePrefix)
}

func buildStaticChains(podIfacePrefix string) []Chain {
	var chains []Chain
	for _, bc := range baseChains {
		hook := bc.hook
		chains = append(chains, Chain{Name: bc.name, Base: &hook, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: bc.target}}}})
	}
	chains = append(chains, egressChains(podIfacePrefix)...)
	return append(chains, ingressChain(podIfacePrefix))
}

// ingressChain holds what applies to every packet routed to a local pod. Traffic from the pod's own
// node never reaches it: the node's packets leave through the output hook, where we do not filter.
func ingressChain(podIfacePrefix string) Chain {
	rules := failClosedIngress(podIfacePrefix)
	rules = append(rules,
		Rule{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
		Rule{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		Rule{VMap: &VMapLookup{Family: IPv4, Field: DestAddr, Map: mapIngressPodsV4}},
		Rule{VMap: &VMapLookup{Family: IPv6, Field: DestAddr, Map: mapIngressPodsV6}},
	)
	return Chain{Name: chainIngress, Rules: rules}
}

// The fail-closed mode (CompileInput.PodInterfacePrefix): a host interface whose name starts with the
// CNI's prefix leads to a pod, and a pod the agent has not programmed yet must not send or receive
// anything, or it is open from the moment its network is up until its isolation is in the kernel.
// "Programmed" is a pair of the anti-spoofing sets: the pod's interface with its address, which
// enter the table in the same transaction as the pod's chains and verdict map entries. A pod selected
// by no policy is programmed too (its pair is there, its traffic then passes as before).
//
// Both directions are checked before any `ct state established,related accept`: a tracked
// connection to an address that a deleted pod held must not reach a new, unprogrammed pod given that
// address. Neighbour discovery still passes (it carries no data, and a pod whose first neighbour
// solicitations were dropped would wait seconds for its gateway once programmed).

// failClosedEgress drops what comes from a pod interface that is not a programmed pod's interface
// and address. It follows the egress chain's pair lookups and neighbour discovery accept, so what
// reaches it from a pod interface is not a programmed pod's (interface, address) pair.
func failClosedEgress(podIfacePrefix string) []Rule {
	if podIfacePrefix == "" {
		return nil
	}
	// iifname "cali*" drop
	return []Rule{{Matches: []Match{IfnamePrefix{Prefix: podIfacePrefix}}, Verdict: Verdict{Kind: Drop}, Comment: "pod interface not programmed yet"}}
}

// failClosedIngress drops what is routed to a pod interface unless that interface and the
// destination address are a programmed pod's: by address too, because a CNI may name the interface
// of a re-created pod as it named its predecessor's (Calico hashes the pod's name).
func failClosedIngress(podIfacePrefix string) []Rule {
	if podIfacePrefix == "" {
		return nil
	}
	var rules []Rule
	for _, f := range []struct {
		family Family
		set    string
	}{{IPv4, setPodIfaceAddrsV4}, {IPv6, setPodIfaceAddrsV6}} {
		// oifname "cali*" oifname . ip daddr != @pod-iface-addrs-v4 drop
		rules = append(rules, Rule{
			Matches: []Match{IfnamePrefix{Output: true, Prefix: podIfacePrefix}, IfnameAddrInSet{Family: f.family, Output: true, Set: f.set, Negate: true}},
			Verdict: Verdict{Kind: Drop}, Comment: "pod interface not programmed yet",
		})
	}
	return rules
}

// dispatchIndex is the position of the dispatch map of a direction and family in dispatchMaps.
func dispatchIndex(dir selectors.Direction, f Family) int {
	for i, d := range dispatchMaps {
		if d.dir == dir && d.family == f {
			return i
		}
	}
	panic("nft: no dispatch map for " + string(dir))
}

func addrKey(f Family) KeyType {
	if f == IPv6 {
		return KeyIPv6
	}
	return KeyIPv4
}
