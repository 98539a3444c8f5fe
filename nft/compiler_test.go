package nft

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

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

func TestCompilerReusesUnchangedSetsAndChains(t *testing.T) {
	var cc Compiler
	first := guestbookModel()
	in := CompileInput{Table: "nftpolicy", Model: first, Interfaces: guestbookInterfaces()}
	before := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(before, want) {
		t.Fatalf("Compiler.Compile differs from Compile on a first call:\n%s\nwant\n%s", Render(before), Render(want))
	}

	// One peer set gains an address; the model shares everything else with the first one.
	second := withAddressSet(first, "redis", single(redisIP, "10.244.9.9", redisIPv6))
	in.Model = second
	after := cc.Compile(in)
	if want := Compile(in); !reflect.DeepEqual(after, want) {
		t.Fatalf("Compiler.Compile differs from Compile after a change:\n%s\nwant\n%s", Render(after), Render(want))
	}

	for _, name := range []string{"peers_guestbook_v4", "peers_guestbook_v6", "peers_external_v4", "svc_http_v4"} {
		if !sameSlice(setByName(t, before, name).Elements, setByName(t, after, name).Elements) {
			t.Errorf("set %s did not change but its elements were lowered again", name)
		}
	}
	if sameSlice(setByName(t, before, "peers_redis_v4").Elements, setByName(t, after, "peers_redis_v4").Elements) {
		t.Error("set peers_redis_v4 changed but kept its old elements")
	}
	for _, c := range after.Chains {
		old, ok := indexChains(before).find(c.Name)
		static := c.Base != nil || c.Name == chainEgress || c.Name == chainEgressChecked || c.Name == chainIngress
		if ok && !static && !sameSlice(old.Rules, c.Rules) {
			t.Errorf("chain %s: same isolation, but its rules were compiled again", c.Name)
		}
	}

	// The diff sends only the new address, without comparing the unchanged sets' elements.
	tx := Diff(before, after)
	want := []Op{AddElements{Set: "peers_redis_v4", Type: KeyIPv4, Elements: []Element{{Addr: addr("10.244.9.9")}}}}
	if !reflect.DeepEqual(tx.Ops, want) {
		t.Fatalf("diff after one new peer address:\n%s\nwant one element added", tx)
	}

	// The earlier ruleset is untouched by the later compile.
	if again := Compile(CompileInput{Table: "nftpolicy", Model: first, Interfaces: guestbookInterfaces()}); !reflect.DeepEqual(before, again) {
		t.Fatal("compiling a later model modified the ruleset of an earlier one")
	}
}

func TestCompilerMatchesCompileOverRandomModels(t *testing.T) {
	// Successive models from random clusters, some sharing sets with the previous model by identity
	// (as selectors.Resolver produces them) and some rebuilt, with Reserve called now and then:
	// Compiler must always agree with Compile.
	r := rand.New(rand.NewPCG(7, 11))
	var cc Compiler
	var prev *selectors.Model
	for i := range 200 {
		snap := randomSnapshot(r)
		snap.Node = "n1" // the random pods are on n1 and n2: about half of them are local
		m := selectors.Resolve(snap)
		if len(m.LocalPods) == 0 {
			t.Fatalf("model %d has no local pod: the chains would go untested", i)
		}
		if prev != nil && r.IntN(2) == 0 {
			// Keep the previous model's slices for every set whose content is equal.
			shared := *m
			shared.AddressSets = slices.Clone(m.AddressSets)
			for j := range shared.AddressSets {
				for _, old := range prev.AddressSets {
					if old.ID == shared.AddressSets[j].ID && reflect.DeepEqual(old, shared.AddressSets[j]) {
						shared.AddressSets[j] = old
					}
				}
			}
			m = &shared
		}
		in := CompileInput{Table: "nftpolicy", Model: m}
		if got, want := cc.Compile(in), Compile(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("model %d: Compiler.Compile differs from Compile:\n%s\nwant\n%s", i, Render(got), Render(want))
		}
		if r.IntN(2) == 0 && len(m.AddressSets) > 0 {
			// A peer event as the resolver hands it out: the same local pods and isolations, one
			// address set changed. The chains are the last call's.
			peers := *m
			peers.AddressSets = slices.Clone(m.AddressSets)
			j := r.IntN(len(peers.AddressSets))
			ranges := peers.AddressSets[j].Ranges
			peers.AddressSets[j].Ranges = append(slices.Clone(ranges[:len(ranges)/2]), single("198.51.100.7")...)
			reused := cc.reused
			in := CompileInput{Table: "nftpolicy", Model: &peers}
			if got, want := cc.Compile(in), Compile(in); !reflect.DeepEqual(got, want) {
				t.Fatalf("model %d after a peer event: Compiler.Compile differs from Compile:\n%s\nwant\n%s", i, Render(got), Render(want))
			}
			if cc.reused != reused+1 {
				t.Fatalf("model %d: a peer event compiled the chains again", i)
			}
			m = &peers
		}
		if r.IntN(4) == 0 {
			cc.Reserve() // as the agent does after a full compile; must change no later output
		}
		prev = m
	}
}

func TestDiffFindsObjectsOfHandBuiltRulesetsOutOfOrder(t *testing.T) {
	sorted := compileGuestbook()
	shuffled := *sorted
	shuffled.Sets = slices.Clone(sorted.Sets)
	slices.Reverse(shuffled.Sets)
	shuffled.Chains = slices.Clone(sorted.Chains)
	slices.Reverse(shuffled.Chains[len(baseChains):])
	if tx := Diff(sorted, &shuffled); len(tx.Ops) != 0 {
		t.Fatalf("the same ruleset in another order needs no change, got:\n%s", tx)
	}
	if tx := Diff(&shuffled, sorted); len(tx.Ops) != 0 {
		t.Fatalf("the same ruleset in another order needs no change, got:\n%s", tx)
	}
}

func TestApplyResultTellsWhetherAChangeOnlyWidens(t *testing.T) {
	a := NewApplier(NewFake("nftpolicy"))
	first := guestbookModel()
	apply := func(m *selectors.Model) ApplyResult {
		t.Helper()
		res, err := a.Apply(Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: guestbookInterfaces()}))
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

// A set that changes on every model is lowered into the array it had two rulesets before, and the
// last two rulesets stay as they were compiled: Diff between them is exact.
func TestCompilerDoubleBuffersChangingSets(t *testing.T) {
	for _, reserve := range []bool{false, true} {
		t.Run(fmt.Sprintf("reserve=%v", reserve), func(t *testing.T) { testCompilerDoubleBuffers(t, reserve) })
	}
}

// testCompilerDoubleBuffers compiles a set changing on every model; with reserve, Reserve is called
// after the first compile, and the first change must go into the array it reserved.
func testCompilerDoubleBuffers(t *testing.T, reserve bool) {
	var cc Compiler
	models := []*selectors.Model{guestbookModel()}
	for _, extra := range []string{"10.244.9.9", "10.244.9.10", "10.244.9.11", "10.244.9.12"} {
		models = append(models, withAddressSet(models[0], "redis", single(redisIP, extra, redisIPv6)))
	}
	var rulesets []*Ruleset
	var reserved []Element
	for i, m := range models {
		in := CompileInput{Table: "nftpolicy", Model: m, Interfaces: guestbookInterfaces()}
		got := cc.Compile(in)
		if want := Compile(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("model %d: Compiler.Compile differs from Compile:\n%s\nwant\n%s", i, Render(got), Render(want))
		}
		if i == 0 && reserve {
			cc.Reserve()
			reserved = cc.peers["peers_redis_v4"].spare
			if cap(reserved) <= len(setByName(t, got, "peers_redis_v4").Elements) {
				t.Fatalf("Reserve gave the set a spare array of capacity %d, no room for one more element", cap(reserved))
			}
		}
		if i > 0 {
			prevIn := CompileInput{Table: "nftpolicy", Model: models[i-1], Interfaces: guestbookInterfaces()}
			prevWant := Compile(prevIn)
			if !reflect.DeepEqual(rulesets[i-1], prevWant) {
				t.Fatalf("model %d: compiling it changed the previous ruleset", i)
			}
			if got, want := Diff(rulesets[i-1], got), Diff(prevWant, Compile(in)); !reflect.DeepEqual(got.Ops, want.Ops) {
				t.Fatalf("model %d: diff from the previous ruleset\n%s\nwant\n%s", i, got, want)
			}
		}
		if i == 1 && reserve {
			if cur := setByName(t, got, "peers_redis_v4").Elements; &cur[0] != &reserved[:1][0] {
				t.Error("the set's first change was not lowered into the array Reserve gave it")
			}
		}
		if i >= 3 {
			cur, older := setByName(t, got, "peers_redis_v4").Elements, setByName(t, rulesets[i-2], "peers_redis_v4").Elements
			if &cur[0] != &older[0] {
				t.Errorf("model %d: the changed set's elements were not lowered into the array of two rulesets before", i)
			}
		}
		rulesets = append(rulesets, got)
	}
}
