package nft

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// withAddressSet returns a copy of m (sharing everything else) whose set id has new ranges.
func withAddressSet(m *selectors.Model, id string, ranges []selectors.AddrRange) *selectors.Model {
	next := *m
	next.AddressSets = slices.Clone(m.AddressSets)
	for i := range next.AddressSets {
		if next.AddressSets[i].ID == id {
			next.AddressSets[i].Ranges = ranges
		}
	}
	return &next
}

func setByName(t *testing.T, rs *Ruleset, name string) Set {
	t.Helper()
	s, ok := indexSets(rs).find(name)
	if !ok {
		t.Fatalf("ruleset has no set %s", name)
	}
	return *s
}

// TestCompilerLowersWhatChangesName follows the guestbook through a peer event, a local pod event
// and a full compile: what the input's Changes name is lowered again and named in the output's
// Changes, everything else is the previous ruleset's, and Diff sends exactly what changed.
func TestCompilerLowersWhatChangesName(t *testing.T) {
	var cc Compiler
	first := guestbookModel()
	in := CompileInput{Table: "nftpolicy", Model: first, Changes: selectors.FullChanges(), Interfaces: guestbookInterfaces()}
	before, changed := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(before, want) {
		t.Fatalf("Compiler.Compile differs from Compile on a first call:\n%s\nwant\n%s", Render(before), Render(want))
	}
	if !changed.Full {
		t.Fatalf("a first compile returned %+v, want Full", changed)
	}

	// One peer set gains an address.
	in.Model = withAddressSet(first, "redis", single(redisIP, "10.244.9.9", redisIPv6))
	in.Changes = selectors.Changes{AddressSets: sets.New("redis")}
	after, changed := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(after, want) {
		t.Fatalf("Compiler.Compile differs from Compile after a peer event:\n%s\nwant\n%s", Render(after), Render(want))
	}
	if want := sets.New("peers_redis_v4"); changed.Full || changed.Chains || !changed.Sets.Equal(want) {
		t.Fatalf("a peer event's changes = %+v, want the redis set (guestbook-1, IPv4 only, uses its IPv4 half)", changed)
	}
	tx := Diff(before, after, changed)
	wantOps := []Op{AddElements{Set: "peers_redis_v4", Type: KeyIPv4, Elements: []Element{{Addr: addr("10.244.9.9")}}}}
	if !reflect.DeepEqual(tx.Ops, wantOps) {
		t.Fatalf("diff after one new peer address:\n%s\nwant one element added", tx)
	}

	// What the changes do not name is not looked at: a set the model changed behind the resolver's
	// back keeps its last version (the contract is the caller's to keep).
	in.Model = withAddressSet(in.Model, "guestbook", single(guestbookIP))
	in.Changes = selectors.Changes{}
	unchanged, changed := cc.Compile(in)
	if !changed.None() || !reflect.DeepEqual(unchanged, after) {
		t.Fatalf("a compile with no changes returned %+v and a different ruleset:\n%s", changed, Render(unchanged))
	}

	// A local pod's isolation changes: the chains and verdict maps are compiled again.
	in.Model.LocalPods = slices.Clone(in.Model.LocalPods)
	in.Model.LocalPods[0].Ingress = nil
	in.Changes = selectors.Changes{LocalPods: sets.New(in.Model.LocalPods[0].Key())}
	isolated, changed := cc.Compile(in)
	if !changed.Chains {
		t.Fatalf("a local pod event's changes = %+v, want the chains", changed)
	}
	for _, m := range dispatchMaps {
		if !changed.Sets.Has(m.name) {
			t.Errorf("a local pod event's changes do not name verdict map %s", m.name)
		}
	}
	if got, want := Diff(unchanged, isolated, changed).String(), Diff(unchanged, isolated, FullChanges()).String(); got != want {
		t.Fatalf("diff by the changes:\n%s\nwant, comparing everything:\n%s", got, want)
	}

	// The earlier ruleset is untouched by the later compiles.
	if again := Compile(CompileInput{Table: "nftpolicy", Model: first, Interfaces: guestbookInterfaces()}); !reflect.DeepEqual(before, again) {
		t.Fatal("compiling a later model modified the ruleset of an earlier one")
	}
}

// TestCompilerMatchesCompileOverResolverSequences follows random clusters through random events, as
// a real selectors.Resolver reports them: after every event the incremental compile must equal the
// stateless Compile of the same model (and a full compile by a Compiler with the same history, set
// sizes included), and the transaction Diff builds from the output's Changes must be the one a full
// comparison builds, leaving the fake holding exactly the compiled ruleset.
func TestCompilerMatchesCompileOverResolverSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var setsOnly, chains int // steps that took each path, so that both are known to be tested
	for seq := range 30 {
		res := selectors.NewResolver("n1")
		res.Load(randomSnapshot(r))
		var incremental, full Compiler
		f := NewFake("nftpolicy")
		a := NewApplier(f)
		var last *Ruleset
		dropIface := ""
		for step := range 40 {
			m, mc := res.Model()
			in := CompileInput{Table: "nftpolicy", Model: m, Changes: mc, Interfaces: randomInterfaces(m, dropIface), DropLog: sequenceDropLog(seq, m)}
			got, changed := incremental.Compile(in)
			in.Changes = selectors.FullChanges()
			fullRS, _ := full.Compile(in)
			if !reflect.DeepEqual(got, fullRS) {
				t.Fatalf("sequence %d step %d: the incremental compile differs from a full one:\n%s\nwant\n%s", seq, step, Render(got), Render(fullRS))
			}
			if g, w := withoutSizes(got), withoutSizes(Compile(in)); !reflect.DeepEqual(g, w) {
				t.Fatalf("sequence %d step %d: the incremental compile differs from Compile:\n%s\nwant\n%s", seq, step, Render(g), Render(w))
			}
			if last != nil {
				if g, w := Diff(last, got, changed).String(), Diff(last, got, FullChanges()).String(); g != w {
					t.Fatalf("sequence %d step %d: diff by the changes %+v:\n%s\nwant\n%s", seq, step, changed, g, w)
				}
			}
			switch {
			case changed.Chains:
				chains++
			case changed.Sets.Len() > 0:
				setsOnly++
			}
			if _, err := a.Apply(got, changed); err != nil {
				t.Fatalf("sequence %d step %d: %v", seq, step, err)
			}
			if g, w := Render(f.Ruleset()), Render(got); g != w {
				t.Fatalf("sequence %d step %d: the fake holds\n%s\nwant\n%s", seq, step, g, w)
			}
			last = got
			dropIface = randomEvent(r, res)
		}
	}
	if setsOnly < 50 || chains < 50 {
		t.Fatalf("%d steps changed sets only and %d changed chains: the sequences do not test both paths", setsOnly, chains)
	}
	t.Logf("%d steps changed sets only, %d changed chains", setsOnly, chains)
}

// sequenceDropLog turns drop logging on in every other sequence, for the pods whose key has an even
// length, logging all for those whose key's length is a multiple of three, and for the
// anti-spoofing drops in every fourth.
func sequenceDropLog(seq int, m *selectors.Model) *DropLog {
	if seq%2 == 0 {
		return nil
	}
	dl := &DropLog{Group: 3, PairRate: 5, Rate: 50, Pods: map[string]bool{}, AllPods: map[string]bool{}, AntiSpoof: seq%4 == 1}
	for _, p := range m.LocalPods {
		if len(p.Key())%2 == 0 {
			dl.Pods[p.Key()] = true
		}
		if len(p.Key())%3 == 0 {
			dl.Pods[p.Key()], dl.AllPods[p.Key()] = true, true
		}
	}
	return dl
}

// withoutSizes returns a copy of rs whose sets have no size: sizes depend on the sets' history.
func withoutSizes(rs *Ruleset) *Ruleset {
	out := *rs
	out.Sets = slices.Clone(rs.Sets)
	for i := range out.Sets {
		out.Sets[i].Size = 0
	}
	return &out
}

// randomInterfaces gives every local pod address an interface named after its pod, except the
// pod named drop.
func randomInterfaces(m *selectors.Model, drop string) map[netip.Addr]string {
	ifaces := map[netip.Addr]string{}
	for _, p := range m.LocalPods {
		if p.Key() == drop {
			continue
		}
		for _, ip := range p.IPs {
			ifaces[ip] = "veth-" + p.Namespace + p.Name
		}
	}
	return ifaces
}

// randomEvent applies one random change to the resolver, taking objects from a new random
// cluster, and sometimes returns the key of a pod whose interface the next compile loses.
func randomEvent(r *rand.Rand, res *selectors.Resolver) (dropIface string) {
	next := randomSnapshot(r)
	switch r.IntN(7) {
	case 0, 1:
		res.SetPod(next.Pods[r.IntN(len(next.Pods))])
	case 2:
		p := next.Pods[r.IntN(len(next.Pods))]
		res.DeletePod(p.Namespace, p.Name)
	case 3:
		res.SetNamespace(next.Namespaces[r.IntN(len(next.Namespaces))])
	case 4:
		res.SetPolicy(next.Policies[r.IntN(len(next.Policies))])
	case 5:
		np := next.Policies[r.IntN(len(next.Policies))]
		res.DeletePolicy(np.Namespace, np.Name)
	default:
		p := next.Pods[r.IntN(len(next.Pods))]
		return p.Namespace + "/" + p.Name
	}
	return ""
}

func TestDiffFindsObjectsOfHandBuiltRulesetsOutOfOrder(t *testing.T) {
	sorted := compileGuestbook()
	shuffled := *sorted
	shuffled.Sets = slices.Clone(sorted.Sets)
	slices.Reverse(shuffled.Sets)
	shuffled.Chains = slices.Clone(sorted.Chains)
	slices.Reverse(shuffled.Chains[len(baseChains):])
	if tx := Diff(sorted, &shuffled, FullChanges()); len(tx.Ops) != 0 {
		t.Fatalf("the same ruleset in another order needs no change, got:\n%s", tx)
	}
	if tx := Diff(&shuffled, sorted, FullChanges()); len(tx.Ops) != 0 {
		t.Fatalf("the same ruleset in another order needs no change, got:\n%s", tx)
	}
}

func TestApplyResultTellsWhetherAChangeOnlyWidens(t *testing.T) {
	a := NewApplier(NewFake("nftpolicy"))
	first := guestbookModel()
	apply := func(m *selectors.Model) ApplyResult {
		t.Helper()
		res, err := a.Apply(Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: guestbookInterfaces()}), FullChanges())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := apply(first); res.OnlyWidens {
		t.Error("creating the table counted as only widening")
	}
	if res := apply(withAddressSet(first, "redis", single(redisIP, "10.244.9.9", redisIPv6))); !res.OnlyWidens || res.Elements != 1 {
		t.Errorf("adding one peer address: %+v, want one element, only widening", res)
	}
	if res := apply(first); res.OnlyWidens || res.Elements != 1 {
		t.Errorf("removing one peer address: %+v, want one element, not only widening", res)
	}
	newPod := *first
	newPod.LocalPods = append(slices.Clone(first.LocalPods), makeLocalPod("default", "new", withIPs("10.244.1.77"), isolatedIngress("deny")))
	if res := apply(&newPod); res.OnlyWidens {
		t.Errorf("isolating a new pod counted as only widening: %+v", res)
	}
}
