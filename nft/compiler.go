package nft

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

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

// sameSlice reports whether a and b are the very same slice (same array, same length). Empty slices
// are the same whatever their arrays: they hold nothing.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
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
