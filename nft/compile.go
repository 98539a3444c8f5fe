package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

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

// CompileInput is everything the compiler needs.
type CompileInput struct {
	Table string
	Model *selectors.Model
	// Interfaces maps each local pod address to the host-side interface its traffic arrives on.
	// Addresses without an entry get no anti-spoofing.
	Interfaces map[netip.Addr]string
}

// Compile turns a resolved model into the full content of our table. It is pure and deterministic.
func Compile(in CompileInput) *Ruleset {
	return new(Compiler).Compile(in)
}

// Compiler compiles models one after the other, remembering what it lowered last time so that the
// parts of a model that did not change cost nothing: a peer or service set whose members are the very
// same slice as in the previous model (selectors.Resolver hands out unchanged sets that way) keeps its
// element slice, and a pod chain whose isolation is the same *Isolation keeps its rules. The Ruleset
// it returns then shares those slices with the previous one, which lets Diff skip them without
// comparing a single element.
//
// Element slices are double-buffered: a set that changes is lowered into the array the set had
// before its previous change, so a set changing on every event costs no allocation once its arrays
// are large enough. Hence the contract:
//   - Compile's output is the same as the package-level Compile's for the same input.
//   - Compile must see every Model whose sets it is to compare by identity: selectors.Resolver reuses
//     the arrays of Models older than the previous one. After a Model was skipped, or a ruleset was
//     not committed, use a new Compiler (the zero value is ready).
//   - The last two Rulesets returned stay intact; older ones may share arrays (elements, sets,
//     chains) with the latest and must no longer be read (nft.Applier holds only the last one it
//     committed).
//
// A Compiler is not safe for concurrent use.
type Compiler struct {
	peers    map[string]peerMemo    // by set name
	services map[string]serviceMemo // by set name
	ports    map[string]*Set        // by set name
	chains   map[string]chainMemo   // by chain name

	antiSpoof        antiSpoofMemo
	antiSpoofScratch []ifaceAddr // an array for the next call's pairs

	// Arrays of the ruleset before the last one, and of the memo before this one, for the next
	// call to reuse (double-buffered like the sets' elements).
	spare struct {
		chains     []Chain
		sets       []Set
		peers      map[string]peerMemo
		services   map[string]serviceMemo
		ports      map[string]*Set
		chainMemos map[string]chainMemo
		names      map[nameKey]string
	}
	last struct { // the arrays of the last ruleset
		chains []Chain
		sets   []Set
	}
	sortedNames []string        // scratch
	setsScratch map[string]*Set // scratch
	policies    policyScratch   // the last compile's policy variants, and scratch
	// isolated is, per local pod of the last model, what its chains were compiled from and their
	// names. A model whose local pods are the same with the same isolations and families (most
	// events change peers only) has the same pod and policy chains: Compile then takes them as they
	// are, without looking at a single rule.
	isolated []isolatedPod
	reused   int                // compiles that took the last call's chains (read by tests)
	names    map[nameKey]string // chain and set names used by the last call

	// dispatch holds, per entry of dispatchMaps, the elements of the last ruleset's map and an array
	// for the next ones.
	dispatch [len(dispatchMaps)]struct {
		last, spare []MapElement
		built       bool
	}
}

// Reserve allocates now what the first change of each set after a fresh Compiler's first Compile
// would otherwise allocate: a spare element array, with room to grow, for every set of the last
// ruleset that has none, and the arrays and maps the next Compile writes into. Called once the first
// ruleset is committed, it makes the events that follow allocate nothing for the sets they change;
// it costs a second copy of every set's elements, which a set that changes holds anyway.
func (cc *Compiler) Reserve() {
	for name, m := range cc.peers {
		if cap(m.spare) == 0 && m.set != nil && len(m.set.Elements) > 0 {
			m.spare = make([]Element, 0, withRoom(len(m.set.Elements)))
			cc.peers[name] = m
		}
	}
	for name, m := range cc.services {
		if cap(m.spare) == 0 && m.set != nil && len(m.set.Elements) > 0 {
			m.spare = make([]Element, 0, withRoom(len(m.set.Elements)))
			cc.services[name] = m
		}
	}
	for i := range cc.dispatch {
		if d := &cc.dispatch[i]; cap(d.spare) < len(d.last) {
			d.spare = make([]MapElement, 0, withRoom(len(d.last)))
		}
	}
	if cap(cc.spare.chains) < len(cc.last.chains) {
		cc.spare.chains = make([]Chain, 0, withRoom(len(cc.last.chains)))
	}
	if cap(cc.spare.sets) < len(cc.last.sets) {
		cc.spare.sets = make([]Set, 0, withRoom(len(cc.last.sets)))
	}
	if cc.spare.peers == nil {
		cc.spare.peers = make(map[string]peerMemo, len(cc.peers))
	}
	if cc.spare.services == nil {
		cc.spare.services = make(map[string]serviceMemo, len(cc.services))
	}
	if cc.spare.ports == nil {
		cc.spare.ports = make(map[string]*Set, len(cc.ports))
	}
	if cc.spare.chainMemos == nil {
		cc.spare.chainMemos = make(map[string]chainMemo, len(cc.chains))
	}
	if cc.spare.names == nil {
		cc.spare.names = make(map[nameKey]string, len(cc.names))
	}
}

// withRoom is the capacity of a new array for n elements that may grow: an eighth more.
func withRoom(n int) int { return n + n/8 + 4 }

// reuseMap returns m emptied, or a new map when m is nil.
func reuseMap[K comparable, V any](m map[K]V, size int) map[K]V {
	if m == nil {
		return make(map[K]V, size)
	}
	clear(m)
	return m
}

type peerMemo struct {
	ranges      []selectors.AddrRange // the model's slice the set was lowered from
	hasIPBlocks bool
	description string
	set         *Set
	spare       []Element // the elements of the set before set: free for its next change
}

type serviceMemo struct {
	services    []selectors.Service
	description string
	set         *Set
	spare       []Element
}

// chainMemo is what a chain was compiled from, in private copies (the model's arrays may be reused).
// Pod chains: the selecting policies. Policy chains: the policy's rules and the families compiled.
type chainMemo struct {
	policies    []selectors.PolicyRef
	policyRules []selectors.Rule
	families    familySet
	rules       []Rule
}

// isolatedPod is what a local pod's chains were compiled from, and their names ("": none).
type isolatedPod struct {
	namespace, name  string
	ingress, egress  *selectors.Isolation
	families         familySet
	inChain, egChain string
}

// sameIsolations reports whether m's local pods are those of the last compile, in the same order,
// with the very same isolations (the resolver makes a new one for every change) and families.
func (cc *Compiler) sameIsolations(m *selectors.Model) bool {
	if cc.last.chains == nil || len(m.LocalPods) != len(cc.isolated) {
		return false
	}
	for i, p := range m.LocalPods {
		r := &cc.isolated[i]
		if p.Ingress != r.ingress || p.Egress != r.egress || p.Namespace != r.namespace || p.Name != r.name || familySetOf(p) != r.families {
			return false
		}
	}
	return true
}

// Compile turns a resolved model into the full content of our table, reusing what the previous call
// lowered for unchanged sets and chains.
func (cc *Compiler) Compile(in CompileInput) *Ruleset {
	c := compiler{in: in, sets: reuseMap(cc.setsScratch, len(cc.peers)+len(cc.services)+8), memo: cc, next: Compiler{
		peers:    reuseMap(cc.spare.peers, len(cc.peers)),
		services: reuseMap(cc.spare.services, len(cc.services)),
		ports:    reuseMap(cc.spare.ports, len(cc.ports)),
		chains:   reuseMap(cc.spare.chainMemos, len(cc.chains)),
		names:    reuseMap(cc.spare.names, len(cc.names)),
	}}
	rs := &Ruleset{Table: in.Table, Chains: cc.spare.chains[:0]}
	c.addAntiSpoofSets()
	rs.Chains = append(rs.Chains, staticChains()...)

	// The dispatch maps' elements are lowered into the arrays of the maps before the last ones and
	// replace the last ones only when they differ (most events change no local pod).
	var maps [len(dispatchMaps)]Map
	for i, d := range dispatchMaps {
		maps[i] = Map{Name: d.name, Type: addrKey(d.family), Comment: d.comment, Elements: cc.dispatch[i].spare[:0]}
	}
	// The memo maps this call fills, unless it takes the last call's as they are.
	spareChainMemos, spareNames := c.next.chains, c.next.names
	reuse := cc.sameIsolations(in.Model)
	isolated := cc.isolated
	if reuse {
		c.next.reused = cc.reused + 1
		// Every pod and policy chain is the last call's (the static ones too, all sorted); only the
		// sets they use have to be declared again, and may have changed.
		c.next.chains, c.next.names = cc.chains, cc.names
		rs.Chains = append(rs.Chains[:0], cc.last.chains...)
		for i := range cc.policies.variants {
			v := &cc.policies.variants[i]
			c.declareVariantSets(v, cc.chains[v.chain].rules)
		}
	} else {
		c.next.reused = cc.reused
		rs.Chains = c.policyChains(rs.Chains)
		isolated = isolated[:0] // read by sameIsolations only, above
	}
	for i, pod := range in.Model.LocalPods {
		if !reuse {
			isolated = append(isolated, isolatedPod{namespace: pod.Namespace, name: pod.Name, ingress: pod.Ingress, egress: pod.Egress, families: familySetOf(pod)})
		}
		rec := &isolated[i]
		for _, dir := range []selectors.Direction{selectors.Ingress, selectors.Egress} {
			iso, name := pod.Ingress, &rec.inChain
			if dir == selectors.Egress {
				iso, name = pod.Egress, &rec.egChain
			}
			if iso == nil {
				continue
			}
			if !reuse {
				chain := c.podChain(pod, dir, iso)
				rs.Chains = append(rs.Chains, chain)
				*name = chain.Name
			}
			for _, ip := range pod.IPs {
				m := &maps[dispatchIndex(dir, FamilyOf(ip))]
				m.Elements = append(m.Elements, MapElement{Key: ip, Verdict: Verdict{Kind: Goto, Chain: *name}})
			}
		}
	}
	rs.Maps = make([]Map, 0, len(maps))
	for i := range maps {
		m, memo := &maps[i], &c.next.dispatch[i]
		slices.SortFunc(m.Elements, func(a, b MapElement) int { return a.Key.Compare(b.Key) })
		if last := cc.dispatch[i].last; cc.dispatch[i].built && slices.Equal(m.Elements, last) {
			memo.last, memo.spare = last, m.Elements
			m.Elements = last
		} else {
			memo.last, memo.spare = m.Elements, last
		}
		memo.built = true
		if len(m.Elements) == 0 {
			m.Elements = nil // as Compile has it
		}
		rs.Maps = append(rs.Maps, *m)
	}
	slices.SortFunc(rs.Maps, func(a, b Map) int { return strings.Compare(a.Name, b.Name) })
	if !reuse {
		slices.SortFunc(rs.Chains[len(baseChains):], func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	}
	names := cc.sortedNames[:0]
	for name := range c.sets {
		names = append(names, name)
	}
	slices.Sort(names) // names, not whole sets: sorting moves strings only
	rs.Sets = cc.spare.sets[:0]
	for _, name := range names {
		rs.Sets = append(rs.Sets, *c.sets[name]) // elements sorted where each set was built
	}
	if len(rs.Chains) == 0 {
		rs.Chains = nil // as Compile has it
	}
	if len(rs.Sets) == 0 {
		rs.Sets = nil
	}
	next := &c.next
	next.policies, next.isolated = cc.policies, isolated
	next.sortedNames = names
	next.setsScratch = c.sets
	next.spare.chains, next.spare.sets = cc.last.chains, cc.last.sets
	next.last.chains, next.last.sets = rs.Chains, rs.Sets
	next.spare.peers, next.spare.services, next.spare.ports = cc.peers, cc.services, cc.ports
	if reuse {
		next.spare.chainMemos, next.spare.names = spareChainMemos, spareNames
	} else {
		next.spare.chainMemos, next.spare.names = cc.chains, cc.names
	}
	*cc = c.next
	return rs
}

type compiler struct {
	in   CompileInput
	sets map[string]*Set
	memo *Compiler // what the previous call lowered
	next Compiler  // what this call lowered, for the next one
}

// egressChains hold what applies to every packet leaving a local pod, before its own policy: the
// source address must be genuine, then tracked connections pass and the pod's policy judges the rest.
//
// The order serves the common packet: an IPv4 packet from a pod's own interface with its own address
// is recognised by one lookup and moves on. Everything else meets the checks one by one; a packet is
// dropped as spoofed when it comes from a pod interface with an address that is not that pod's, or
// from any other interface with a local pod's address.
func egressChains() []Chain {
	checked := Verdict{Kind: Goto, Chain: chainEgressChecked}
	return []Chain{
		{Name: chainEgress, Rules: []Rule{
			{Matches: []Match{IfnameAddrInSet{Family: IPv4, Set: setPodIfaceAddrsV4}}, Verdict: checked},
			// Neighbour discovery uses link-local and unspecified sources, which anti-spoofing would
			// drop, and must not meet a pod's egress policy either.
			{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
			{Matches: []Match{IfnameAddrInSet{Family: IPv6, Set: setPodIfaceAddrsV6}}, Verdict: checked},
			// Not a pod's own interface and address: a pod sends only from its own addresses ...
			{Matches: []Match{IfnameInSet{Set: setPodIfaces}}, Verdict: Verdict{Kind: Drop}, Comment: "spoofed source from a pod interface"},
			// ... and nobody else sends from them.
			{Matches: []Match{AddrInSet{Family: IPv4, Field: SourceAddr, Set: setPodAddrsV4}}, Verdict: Verdict{Kind: Drop}, Comment: "local pod address from a foreign interface"},
			{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: setPodAddrsV6}}, Verdict: Verdict{Kind: Drop}, Comment: "local pod address from a foreign interface"},
			{Verdict: checked},
		}},
		{Name: chainEgressChecked, Rules: []Rule{
			// Replies of allowed connections, and ICMP errors about them.
			{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
			{VMap: &VMapLookup{Family: IPv4, Field: SourceAddr, Map: mapEgressPodsV4}},
			{VMap: &VMapLookup{Family: IPv6, Field: SourceAddr, Map: mapEgressPodsV6}},
		}},
	}
}

// staticChains are the chains every ruleset has with the same rules: the base chains, the egress
// chains and the ingress chain. Built once and shared by every ruleset (rulesets are read-only).
var staticChains = sync.OnceValue(func() []Chain {
	var chains []Chain
	for _, bc := range baseChains {
		hook := bc.hook
		chains = append(chains, Chain{Name: bc.name, Base: &hook, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: bc.target}}}})
	}
	chains = append(chains, egressChains()...)
	return append(chains, ingressChain())
})

// ingressChain holds what applies to every packet routed to a local pod. Traffic from the pod's own
// node never reaches it: the node's packets leave through the output hook, where we do not filter.
func ingressChain() Chain {
	return Chain{Name: chainIngress, Rules: []Rule{
		{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
		{VMap: &VMapLookup{Family: IPv4, Field: DestAddr, Map: mapIngressPodsV4}},
		{VMap: &VMapLookup{Family: IPv6, Field: DestAddr, Map: mapIngressPodsV6}},
	}}
}

// ifaceAddr is a local pod address with its host interface.
type ifaceAddr struct {
	addr  netip.Addr
	iface string
}

// antiSpoofMemo is what addAntiSpoofSets built last time, from which addresses and interfaces.
type antiSpoofMemo struct {
	pairs []ifaceAddr // in the order of the model's local pods
	sets  []*Set
}

// addAntiSpoofSets declares the sets of local pod interfaces and addresses, reusing the previous
// ones when the model's local pods have the same addresses on the same interfaces.
func (c *compiler) addAntiSpoofSets() {
	pairs := c.memo.antiSpoofScratch[:0]
	for _, pod := range c.in.Model.LocalPods {
		for _, ip := range pod.IPs {
			if iface, ok := c.in.Interfaces[ip]; ok {
				pairs = append(pairs, ifaceAddr{addr: ip, iface: iface})
			}
		}
	}
	if prev := c.memo.antiSpoof; prev.sets != nil && slices.Equal(prev.pairs, pairs) {
		for _, s := range prev.sets {
			c.sets[s.Name] = s
		}
		c.next.antiSpoof, c.next.antiSpoofScratch = prev, pairs
		return
	}
	sets := c.buildAntiSpoofSets(pairs)
	for _, s := range sets {
		c.sets[s.Name] = s
	}
	// The pairs become the memo; the previous memo's array is the scratch of the next call.
	c.next.antiSpoof, c.next.antiSpoofScratch = antiSpoofMemo{pairs: pairs, sets: sets}, c.memo.antiSpoof.pairs
}

func (c *compiler) buildAntiSpoofSets(local []ifaceAddr) []*Set {
	ifaces := &Set{Name: setPodIfaces, Type: KeyIfname, Comment: "host interfaces of local pods"}
	pairs := map[Family]*Set{
		IPv4: {Name: setPodIfaceAddrsV4, Type: KeyIfnameIPv4, Comment: "local pod interface and address"},
		IPv6: {Name: setPodIfaceAddrsV6, Type: KeyIfnameIPv6, Comment: "local pod interface and address"},
	}
	addrs := map[Family]*Set{
		IPv4: {Name: setPodAddrsV4, Type: KeyIPv4, Comment: "local pod addresses with a known interface"},
		IPv6: {Name: setPodAddrsV6, Type: KeyIPv6, Comment: "local pod addresses with a known interface"},
	}
	seen := map[string]bool{}
	for _, p := range local {
		if !seen[p.iface] {
			seen[p.iface] = true
			ifaces.Elements = append(ifaces.Elements, Element{Ifname: p.iface})
		}
		f := FamilyOf(p.addr)
		pairs[f].Elements = append(pairs[f].Elements, Element{Ifname: p.iface, Addr: p.addr})
		addrs[f].Elements = append(addrs[f].Elements, Element{Addr: p.addr})
	}
	sets := []*Set{ifaces, pairs[IPv4], pairs[IPv6], addrs[IPv4], addrs[IPv6]}
	for _, s := range sets {
		SortElements(s.Elements)
	}
	return sets
}

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

// peerSet returns the name of the family's half of an AddressSet, creating it on first use.
func (c *compiler) peerSet(id string, f Family) string {
	name := c.name(nameKey{kind: peerSetPrefix, a: id, f: f}, func() string { return peerSetPrefix + id + familySuffix(f) })
	if _, ok := c.sets[name]; ok {
		return name
	}
	as, _ := findAddressSet(c.in.Model, id)
	if m, ok := c.memo.peers[name]; ok && sameSlice(m.ranges, as.Ranges) && m.hasIPBlocks == as.HasIPBlocks && m.description == as.Description {
		c.sets[name] = m.set
		c.next.peers[name] = m
		return name
	}
	// Peers chosen only by selectors are pod addresses: a hash set, one element per address and an
	// O(1) lookup. Only a definition with an ipBlock needs an interval set, for its ranges.
	prev := c.memo.peers[name]
	set := &Set{Name: name, Type: addrKey(f), Interval: as.HasIPBlocks, Comment: truncateComment(as.Description), Elements: spareElements(prev.spare)}
	for _, r := range as.Ranges {
		if FamilyOf(r.From) != f {
			continue
		}
		if set.Interval {
			set.Elements = append(set.Elements, Element{Addr: r.From, AddrEnd: r.To})
			continue
		}
		for a := r.From; ; a = a.Next() {
			set.Elements = append(set.Elements, Element{Addr: a})
			if a == r.To {
				break
			}
		}
	}
	SortElements(set.Elements)
	if len(set.Elements) == 0 {
		set.Elements = nil // as Compile has it
	}
	if !set.Interval {
		set.Size = setSize(len(set.Elements), prev.set)
	}
	c.sets[name] = set
	c.next.peers[name] = peerMemo{ranges: as.Ranges, hasIPBlocks: as.HasIPBlocks, description: as.Description, set: set, spare: elementsOf(prev.set)}
	return name
}

// portSet returns the name of the port set holding ranges (sorted, disjoint), creating it on first
// use. Rules with the same ports share one set, named after the ports, whatever their policy or
// family. Several ports could be an anonymous set in each rule, as nft writes `tcp dport { 80, 443 }`,
// but the kernel pays for every set of a table on each set it looks up by name, and more for an
// anonymous set (it walks the whole transaction to bind one): anonymous port sets were a sixth of a
// full replacement's time at 50k cluster pods (306 of them, 97 distinct).
//
// Two lists of ports whose names collide (48 bits of a hash) cannot share a set: the second one is
// not given a set (ok false) and its rule keeps an anonymous set.
func (c *compiler) portSet(ranges []PortRange) (name string, ok bool) {
	name, text := portSetName(ranges)
	set, ok := c.next.ports[name]
	if !ok {
		set, ok = c.memo.ports[name]
	}
	if !ok {
		set = &Set{Name: name, Type: KeyPort, Interval: true, Comment: truncateComment("ports " + strings.Trim(text, "{ }"))}
		for _, r := range ranges {
			set.Elements = append(set.Elements, Element{Port: r.First, PortEnd: r.Last})
		}
	}
	if !portsEqual(set.Elements, ranges) {
		return "", false
	}
	c.sets[name] = set
	c.next.ports[name] = set
	return name, true
}

// portSetName names the port set of ranges after them, and returns them as nft writes them.
func portSetName(ranges []PortRange) (name, text string) {
	text = renderPorts(ranges)
	sum := sha256.Sum256([]byte(portSetPrefix + text))
	return portSetPrefix + hex.EncodeToString(sum[:6]), text
}

// portsEqual reports whether a port set's elements are ranges.
func portsEqual(elems []Element, ranges []PortRange) bool {
	return slices.EqualFunc(elems, ranges, func(e Element, r PortRange) bool { return e.Port == r.First && e.PortEnd == r.Last })
}

// declarePortSet declares a port set that a reused chain refers to.
func (c *compiler) declarePortSet(name string) {
	if _, ok := c.next.ports[name]; ok {
		return
	}
	set, ok := c.memo.ports[name]
	if !ok {
		panic("nft: a reused chain refers to unknown port set " + name)
	}
	c.sets[name] = set
	c.next.ports[name] = set
}

// serviceSet returns the name of the family's half of a ServiceSet, creating it on first use.
func (c *compiler) serviceSet(id string, f Family) string {
	name := c.name(nameKey{kind: serviceSetPrefix, a: id, f: f}, func() string { return serviceSetPrefix + id + familySuffix(f) })
	if _, ok := c.sets[name]; ok {
		return name
	}
	ss, found := findServiceSet(c.in.Model, id)
	if m, ok := c.memo.services[name]; ok && found && sameSlice(m.services, ss.Services) && m.description == ss.Description {
		c.sets[name] = m.set
		c.next.services[name] = m
		return name
	}
	keyType := KeyIPv4ProtoPort
	if f == IPv6 {
		keyType = KeyIPv6ProtoPort
	}
	prev := c.memo.services[name]
	set := &Set{Name: name, Type: keyType, Elements: spareElements(prev.spare)}
	if found {
		set.Comment = truncateComment(ss.Description)
		for _, s := range ss.Services {
			if FamilyOf(s.Addr) == f {
				set.Elements = append(set.Elements, Element{Addr: s.Addr, Proto: protoNumber(s.Protocol), Port: s.Port})
			}
		}
	}
	SortElements(set.Elements)
	if len(set.Elements) == 0 {
		set.Elements = nil // as Compile has it
	}
	set.Size = setSize(len(set.Elements), prev.set)
	if found {
		c.next.services[name] = serviceMemo{services: ss.Services, description: ss.Description, set: set, spare: elementsOf(prev.set)}
	}
	c.sets[name] = set
	return name
}

// spareElements returns the array of spare to lower a set's elements into (nil: a new one).
func spareElements(spare []Element) []Element {
	if cap(spare) == 0 {
		return nil
	}
	return spare[:0]
}

func elementsOf(s *Set) []Element {
	if s == nil {
		return nil
	}
	return s.Elements
}

// Sizes of hash sets (see Set.Size). A set is created with room for twice its elements, in powers of
// two, and keeps its size while it grows into that room or shrinks to a small part of it. A new size
// redefines the set: Diff deletes and re-creates it with the chains that use it, in one transaction.
const (
	minSetSize     = 64
	setShrinkBelow = 16 // a set holding less than 1/16 of its size gets a smaller one
)

// setSize returns the size of a hash set of n elements whose previous version was prev (nil: none).
func setSize(n int, prev *Set) uint32 {
	if prev != nil && prev.Size > 0 && n <= int(prev.Size) && (prev.Size == minSetSize || n >= int(prev.Size)/setShrinkBelow) {
		return prev.Size
	}
	size := uint32(minSetSize)
	for int(size) < 2*n {
		size *= 2
	}
	return size
}

// familySuffix ends the name of a family's half of a peer or service set.
func familySuffix(f Family) string {
	if f == IPv6 {
		return "_v6"
	}
	return "_v4"
}

// sameSlice reports whether a and b are the very same slice (same array, same length). Empty slices
// are the same whatever their arrays: they hold nothing.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func findAddressSet(m *selectors.Model, id string) (selectors.AddressSet, bool) {
	i, ok := slices.BinarySearchFunc(m.AddressSets, id, func(s selectors.AddressSet, id string) int { return strings.Compare(s.ID, id) })
	if !ok {
		return selectors.AddressSet{}, false
	}
	return m.AddressSets[i], true
}

func findServiceSet(m *selectors.Model, id string) (selectors.ServiceSet, bool) {
	i, ok := slices.BinarySearchFunc(m.ServiceSets, id, func(s selectors.ServiceSet, id string) int { return strings.Compare(s.ID, id) })
	if !ok {
		return selectors.ServiceSet{}, false
	}
	return m.ServiceSets[i], true
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

// The family lists a chain can be compiled for. familySet.list returns one of them, so that
// compiling a chain allocates no list; callers must not modify it.
var (
	familiesIPv4 = []Family{IPv4}
	familiesIPv6 = []Family{IPv6}
	familiesDual = []Family{IPv4, IPv6}
)

// familySet is a set of families.
type familySet uint8

const (
	hasIPv4 familySet = 1 << iota
	hasIPv6
)

// familySetOf is the families of a pod's addresses.
func familySetOf(pod selectors.LocalPod) familySet {
	var fs familySet
	for _, a := range pod.IPs {
		switch FamilyOf(a) {
		case IPv4:
			fs |= hasIPv4
		case IPv6:
			fs |= hasIPv6
		}
	}
	return fs
}

// list returns the families, IPv4 first, as one of the shared lists above (nil for none).
func (fs familySet) list() []Family {
	switch fs {
	case hasIPv4 | hasIPv6:
		return familiesDual
	case hasIPv4:
		return familiesIPv4
	case hasIPv6:
		return familiesIPv6
	}
	return nil
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

func dropComment(dir selectors.Direction, iso *selectors.Isolation) string {
	names := make([]string, len(iso.Policies))
	for i, p := range iso.Policies {
		names[i] = p.String()
	}
	return truncateComment(fmt.Sprintf("%s isolated by %s", dir, strings.Join(names, ", ")))
}

// truncatedName returns name when it is short enough, else a truncated name made unique by a hash of key.
// nameKey identifies a chain or set name by what it is made of, so that names already made are found
// without building the string again.
type nameKey struct {
	kind string // the name's prefix
	a, b string
	f    Family
}

// name returns the name for key: the one the previous call made, or build's. Names used by this call
// are kept for the next one.
func (c *compiler) name(key nameKey, build func() string) string {
	name, ok := c.next.names[key]
	if !ok {
		if name, ok = c.memo.names[key]; !ok {
			name = build()
		}
		c.next.names[key] = name
	}
	return name
}

func truncatedName(name, key string) string {
	if len(name) <= maxNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:])[:8]
	return name[:maxNameLen-len(hash)-1] + "_" + hash
}

// truncateComment keeps comments within maxCommentLen.
func truncateComment(s string) string {
	if len(s) <= maxCommentLen {
		return s
	}
	return s[:maxCommentLen-3] + "..."
}
