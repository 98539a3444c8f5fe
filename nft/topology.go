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
	// Base chains (see baseChains for why these hooks and priorities). Egress and ingress are
	// separate base chains on the postrouting hook: an accept in the egress chain ends only that base
	// chain, so same-node traffic is checked against the source pod's egress AND the destination
	// pod's ingress.
	chainSourceCheck        = "source-check"        // hook prerouting: anti-spoofing, on every arriving packet
	chainEgressPostrouting  = "egress-postrouting"  // pod -> anywhere but its node
	chainEgressInput        = "egress-input"        // pod -> its own node
	chainIngressPostrouting = "ingress-postrouting" // anyone but the node -> local pod

	// Regular chains the base chains jump to.
	chainSpoofing = "anti-spoofing"
	chainEgress   = "egress"
	chainIngress  = "ingress"

	// Verdict maps: local pod address -> goto that pod's chain, for pods isolated in that direction
	// or with ClusterNetworkPolicy rules for it.
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
	// ClusterNetworkPolicy tier chains, per tier and direction (see clusterchains.go).
	adminIngressChainPrefix    = "admin-in_"
	adminEgressChainPrefix     = "admin-eg_"
	baselineIngressChainPrefix = "baseline-in_"
	baselineEgressChainPrefix  = "baseline-eg_"
	peerSetPrefix              = "peers_"
	serviceSetPrefix           = "svc_"
	portSetPrefix              = "ports_"

	// Hook priorities, relative to the filter priority (0); see baseChains.
	sourceCheckPriority = -150 // prerouting: after conntrack (-200), before DNAT (-100)
	egressPriority      = 90   // postrouting: before SNAT (100)
	ingressPriority     = 95   // postrouting: after egress, before SNAT (100)
	egressInputPriority = 110  // input: after IPVS takes Service traffic (99)

	// maxNameLen keeps dynamic names readable; longer ones are truncated and suffixed with a hash.
	maxNameLen = 64
	// maxCommentLen is below the kernel's limit on rule user data.
	maxCommentLen = 128
)

// ndTypes are the ICMPv6 neighbour discovery messages: always accepted, or IPv6 stops working.
var ndTypes = []uint8{ICMPv6RouterSolicit, ICMPv6RouterAdvert, ICMPv6NeighborSolicit, ICMPv6NeighborAdvert, ICMPv6Redirect}

// baseChains declares the hooks we attach to. Policies must see the backend pod and its target port
// of Service traffic, never the ClusterIP, under every kube-proxy mode:
//   - iptables and nftables modes DNAT in prerouting (priority -100), and the packet is then routed
//     (forward, postrouting) or delivered (input) with the backend as destination;
//   - IPVS answers a ClusterIP on the input hook (priority 99), rewrites the destination there and
//     sends the packet out through output and postrouting: a backend on the same node never crosses
//     the forward hook, and a check on input before IPVS sees the ClusterIP.
//
// So egress and ingress are judged on postrouting, before SNAT (priority 100) hides a hairpin or
// NodePort client, which every routed or IPVS-sent packet crosses with its final destination; traffic
// to the node itself is judged on input after IPVS has taken the Service traffic. Postrouting knows no
// input interface, so the anti-spoofing checks, which need it, run on prerouting before any DNAT.
// The node's own traffic (output hook) is not filtered; on postrouting it is recognised by its source
// address.
var baseChains = []struct {
	name, target string
	hook         BaseHook
}{
	{chainSourceCheck, chainSpoofing, BaseHook{Hook: HookPrerouting, Priority: sourceCheckPriority}},
	{chainEgressPostrouting, chainEgress, BaseHook{Hook: HookPostrouting, Priority: egressPriority}},
	{chainEgressInput, chainEgress, BaseHook{Hook: HookInput, Priority: egressInputPriority}},
	{chainIngressPostrouting, chainIngress, BaseHook{Hook: HookPostrouting, Priority: ingressPriority}},
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

// spoofingChain holds the checks that the source address of an arriving packet is genuine, before
// any policy sees it: a packet is dropped as spoofed when it comes from a pod interface with an
// address that is not that pod's, or from any other interface with a local pod's address.
//
// The order serves the common packet: an IPv4 packet from a pod's own interface with its own address
// is recognised by one lookup and leaves the chain.
func spoofingChain(podIfacePrefix string, dl *DropLog) Chain {
	genuine := Verdict{Kind: Return}
	rules := []Rule{
		{Matches: []Match{IfnameAddrInSet{Family: IPv4, Set: setPodIfaceAddrsV4}}, Verdict: genuine},
		// Neighbour discovery uses link-local and unspecified sources, which anti-spoofing would
		// drop.
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		{Matches: []Match{IfnameAddrInSet{Family: IPv6, Set: setPodIfaceAddrsV6}}, Verdict: genuine},
	}
	// Not a pod's own interface and address: a pod sends only from its own addresses ...
	fromPodIface := IfnameInSet{Set: setPodIfaces}
	rules = append(rules, dl.antiSpoofLogRules(hasIPv4|hasIPv6, fromPodIface)...)
	rules = append(rules, Rule{Matches: []Match{fromPodIface}, Verdict: Verdict{Kind: Drop}, Comment: "spoofed source from a pod interface"})
	rules = append(rules, failClosedEgress(podIfacePrefix)...)
	// ... and nobody else sends from them.
	for _, f := range []struct {
		families familySet
		match    AddrInSet
	}{
		{hasIPv4, AddrInSet{Family: IPv4, Field: SourceAddr, Set: setPodAddrsV4}},
		{hasIPv6, AddrInSet{Family: IPv6, Field: SourceAddr, Set: setPodAddrsV6}},
	} {
		rules = append(rules, dl.antiSpoofLogRules(f.families, f.match)...)
		rules = append(rules, Rule{Matches: []Match{f.match}, Verdict: Verdict{Kind: Drop}, Comment: "local pod address from a foreign interface"})
	}
	return Chain{Name: chainSpoofing, Rules: rules}
}

// egressChain holds what applies to every packet leaving a local pod, its source already checked on
// prerouting: tracked connections pass and the pod's policy judges the rest.
func egressChain() Chain {
	return Chain{Name: chainEgress, Rules: []Rule{
		// Replies of allowed connections, and ICMP errors about them.
		{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
		// Neighbour discovery must not meet a pod's egress policy, or IPv6 stops working.
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		{VMap: &VMapLookup{Family: IPv4, Field: SourceAddr, Map: mapEgressPodsV4}},
		{VMap: &VMapLookup{Family: IPv6, Field: SourceAddr, Map: mapEgressPodsV6}},
	}}
}

// defaultStaticChains are the static chains without the fail-closed mode and drop logging, built
// once and shared by every ruleset (rulesets are read-only).
var defaultStaticChains = sync.OnceValue(func() []Chain { return buildStaticChains("", nil) })

// staticChains are the chains every ruleset has with the same rules: the base chains, the egress
// chains and the ingress chain. podIfacePrefix turns the fail-closed mode on (see failClosedEgress);
// dl, when it logs them, the logging of the anti-spoofing drops.
func staticChains(podIfacePrefix string, dl *DropLog) []Chain {
	if podIfacePrefix == "" && (dl == nil || !dl.AntiSpoof) {
		return defaultStaticChains()
	}
	return buildStaticChains(podIfacePrefix, dl)
}

func buildStaticChains(podIfacePrefix string, dl *DropLog) []Chain {
	var chains []Chain
	for _, bc := range baseChains {
		hook := bc.hook
		chains = append(chains, Chain{Name: bc.name, Base: &hook, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: bc.target}}}})
	}
	chains = append(chains, spoofingChain(podIfacePrefix, dl), egressChain())
	return append(chains, ingressChain(podIfacePrefix))
}

// ingressChain holds what applies to every packet leaving the node towards a local pod. The node's
// own traffic to its pods is always allowed, as kubelet's probes need.
func ingressChain(podIfacePrefix string) Chain {
	rules := failClosedIngress(podIfacePrefix)
	rules = append(rules,
		Rule{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
		Rule{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		Rule{Matches: []Match{SourceIsLocal{}}, Verdict: Verdict{Kind: Accept}, Comment: "the node's own traffic"},
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
