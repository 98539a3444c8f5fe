package nft

import (
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// CompileInput is everything the compiler needs.
type CompileInput struct {
	Table string
	Model *selectors.Model
	// Changes says what differs between Model and the Model of the Compiler's previous call, as
	// selectors.Resolver.Model returns it. The package-level Compile ignores it.
	Changes selectors.Changes
	// Interfaces maps each local pod address to the host-side interface its traffic arrives on.
	// Addresses without an entry get no anti-spoofing.
	Interfaces map[netip.Addr]string
	// PodInterfacePrefix turns the fail-closed mode on: traffic from or to a host interface whose name
	// starts with it is dropped unless the interface and address are a local pod's in Interfaces
	// (see failClosedEgress). "" (the default) leaves such traffic to the policies as before.
	PodInterfacePrefix string
	// PodDenyCounters gives the default deny of each isolated pod and direction its own counter,
	// instead of one per namespace and direction. Off by default: the counters, and the metrics
	// made of them, then grow with the pods rather than the namespaces.
	PodDenyCounters bool
	// DropLog, when set, logs the default denies of the pods it names and, if it says so, the
	// anti-spoofing drops (see DropLog). nil (the default) logs nothing and compiles the table as
	// without it.
	DropLog *DropLog
}

// Changes names what may differ between a Ruleset and the one its Compiler returned before it.
// Everything it does not name is equal in both, which lets Diff skip it without a look.
type Changes struct {
	// Full: anything may differ (there is no previous Ruleset): compare everything.
	Full bool
	// Sets are the names of the sets and verdict maps that were added or removed, or whose
	// definition or elements may differ.
	Sets sets.Set[string]
	// Chains: chains may have been added, removed or rewritten: compare every chain.
	Chains bool
}

// FullChanges is the Changes of a Ruleset with nothing before it.
func FullChanges() Changes { return Changes{Full: true} }

// None reports whether nothing may differ.
func (c Changes) None() bool { return !c.Full && !c.Chains && c.Sets.Len() == 0 }

// Set reports whether the set or map of a name may differ.
func (c Changes) Set(name string) bool { return c.Full || c.Sets.Has(name) }

// Compile turns a resolved model into the full content of our table. It is pure and deterministic.
func Compile(in CompileInput) *Ruleset {
	rs, _ := new(Compiler).Compile(in)
	return rs
}

// Compiler compiles the Models of one selectors.Resolver one after the other, lowering again only what
// their Changes name: the peer and service sets whose IDs changed, and the pod and policy chains (with
// the verdict maps) when a local pod or a policy changed. It returns, with each Ruleset, the Changes
// that tell Diff what to compare with the previous one.
//
// A Ruleset is never modified once returned; a later one may share the parts that did not change.
// The Changes of a call are relative to the Ruleset of the call before: the caller applies every
// Ruleset it is given. After a Model it did not compile, or a Ruleset that was not committed, it uses
// a new Compiler (the zero value is ready), whose first compile is a full one.
//
// A Compiler is not safe for concurrent use.
type Compiler struct {
	last *Ruleset // nil before the first compile
	// refs are the sets the last Ruleset's chains refer to, by name: what each is lowered from.
	refs map[string]setRef
	// antiSpoof is what the last Ruleset's anti-spoofing sets were built from.
	antiSpoof []ifaceAddr
	// policyChains are the last Ruleset's policy chains, by name, with what they were compiled from.
	policyChains map[string]policyChainMemo
	// podIfacePrefix and podDenyCounters are the last compile's CompileInput.PodInterfacePrefix and
	// PodDenyCounters.
	podIfacePrefix  string
	podDenyCounters bool
	// dropLog is the last compile's CompileInput.DropLog.
	dropLog *DropLog
}

// Compile turns a resolved model into the full content of our table, lowering only what in.Changes
// names (everything on a Compiler's first call, or when in.Changes.Full).
func (cc *Compiler) Compile(in CompileInput) (*Ruleset, Changes) {
	full := in.Changes.Full || cc.last == nil || cc.last.Table != in.Table || cc.podIfacePrefix != in.PodInterfacePrefix ||
		cc.podDenyCounters != in.PodDenyCounters || !dropLogShapeEqual(cc.dropLog, in.DropLog)
	// Which pods log changes only their chains (and the policy chain variants they jump to).
	logPodsChanged := !dropLogEqual(cc.dropLog, in.DropLog)
	cc.podIfacePrefix, cc.podDenyCounters, cc.dropLog = in.PodInterfacePrefix, in.PodDenyCounters, in.DropLog
	changed := Changes{Full: full, Sets: sets.New[string]()}
	rs := &Ruleset{Table: in.Table}
	var lowered map[string]*Set // sets lowered by this call, by name
	if full || in.Changes.Isolations() || logPodsChanged {
		c := chainCompiler{model: in.Model, podIfacePrefix: in.PodInterfacePrefix, podDenyCounters: in.PodDenyCounters, dropLog: in.DropLog,
			refs: map[string]setRef{}, last: cc.policyChains}
		rs.Chains, rs.Maps = c.compile()
		rs.Counters = countersOf(c.counters)
		cc.policyChains = c.next
		changed.Chains = true
		for _, m := range rs.Maps {
			changed.Sets.Insert(m.Name)
		}
		lowered = cc.lowerSets(in, c.refs, full)
		for name := range cc.refs {
			if _, ok := c.refs[name]; !ok {
				changed.Sets.Insert(name) // no longer used
			}
		}
		cc.refs = c.refs
	} else {
		rs.Chains, rs.Maps, rs.Counters = cc.last.Chains, cc.last.Maps, cc.last.Counters
		lowered = cc.lowerChangedSets(in)
	}
	pairs := antiSpoofPairs(in)
	if full || !slices.Equal(pairs, cc.antiSpoof) {
		for _, s := range buildAntiSpoofSets(pairs) {
			lowered[s.Name] = s
		}
		cc.antiSpoof = pairs
	}
	if full {
		for _, s := range dropLogSets(in.DropLog) {
			lowered[s.Name] = s
		}
	}
	for name := range lowered {
		changed.Sets.Insert(name)
	}
	rs.Sets = cc.mergeSets(lowered, changed.Chains)
	cc.last = rs
	if full {
		changed.Sets, changed.Chains = nil, false
	}
	return rs, changed
}

// lowerSets lowers the sets of refs whose content may have changed (all of them when full), and
// returns them by name.
func (cc *Compiler) lowerSets(in CompileInput, refs map[string]setRef, full bool) map[string]*Set {
	lowered := map[string]*Set{}
	for name, ref := range refs {
		// Port sets are named after their ports: the same name holds the same ports but for a
		// collision of their hashes.
		if old, known := cc.refs[name]; full || !known || ref.changed(&in.Changes) || !slices.Equal(old.ports, ref.ports) {
			lowered[name] = ref.lower(in.Model, name, cc.previous(name))
		}
	}
	return lowered
}

// lowerChangedSets lowers, by ID, the peer and service sets that in.Changes names and the last
// Ruleset's chains use.
func (cc *Compiler) lowerChangedSets(in CompileInput) map[string]*Set {
	lowered := map[string]*Set{}
	lower := func(prefix, id string) {
		for _, f := range familiesDual {
			name := setName(prefix, id, f)
			if ref, ok := cc.refs[name]; ok {
				lowered[name] = ref.lower(in.Model, name, cc.previous(name))
			}
		}
	}
	for id := range in.Changes.AddressSets {
		lower(peerSetPrefix, id)
	}
	for id := range in.Changes.ServiceSets {
		lower(serviceSetPrefix, id)
	}
	return lowered
}

// previous returns the last Ruleset's set of a name, or nil.
func (cc *Compiler) previous(name string) *Set {
	if cc.last == nil {
		return nil
	}
	if i, ok := slices.BinarySearchFunc(cc.last.Sets, name, compareSetName); ok {
		return &cc.last.Sets[i]
	}
	return nil
}

// mergeSets returns the sets of the new Ruleset, sorted by name: the lowered ones, and the last
// Ruleset's for the others that are still used (all of them, unless the chains changed).
func (cc *Compiler) mergeSets(lowered map[string]*Set, chainsChanged bool) []Set {
	var out []Set
	if !chainsChanged {
		out = slices.Clone(cc.last.Sets)
		for i := range out {
			if s, ok := lowered[out[i].Name]; ok {
				out[i] = *s
			}
		}
		return out
	}
	names := make([]string, 0, len(cc.refs)+len(lowered))
	for name := range cc.refs {
		names = append(names, name)
	}
	for name := range lowered {
		if _, ok := cc.refs[name]; !ok {
			names = append(names, name) // the anti-spoofing sets
		}
	}
	for _, s := range antiSpoofSetNames {
		if _, ok := lowered[s]; !ok {
			names = append(names, s)
		}
	}
	if cc.dropLog != nil {
		for _, s := range dropLogSetNames {
			if _, ok := lowered[s]; !ok {
				names = append(names, s) // made by the full compile that turned logging on
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if s, ok := lowered[name]; ok {
			out = append(out, *s)
		} else {
			out = append(out, *cc.previous(name))
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func compareSetName(s Set, name string) int { return strings.Compare(s.Name, name) }
