package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// applyAndCheck applies a model and checks that the fake now holds exactly what Compile produced.
func applyAndCheck(t *testing.T, a *Applier, f *Fake, in CompileInput) ApplyResult {
	t.Helper()
	desired := Compile(in)
	res, err := a.Apply(desired, FullChanges())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got, want := Render(f.Ruleset()), Render(desired); got != want {
		t.Fatalf("fake table differs from the compiled ruleset\n--- got\n%s\n--- want\n%s", got, want)
	}
	return res
}

// runApplierSequence applies the guestbook model and then every change of applierSequence through a,
// calling check with each desired ruleset after it committed.
func runApplierSequence(t *testing.T, a *Applier, check func(desired *Ruleset)) {
	t.Helper()
	in := CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()}
	apply := func() ApplyResult {
		desired := Compile(in)
		res, err := a.Apply(desired, FullChanges())
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		check(desired)
		return res
	}
	if res := apply(); !res.FullReplace {
		t.Errorf("first apply must replace the table, got %+v", res)
	}
	if res := apply(); !res.Unchanged() {
		t.Errorf("re-applying the same model sent %d operations", res.Ops)
	}
	for _, step := range applierSequence {
		step.Change(in.Model, in.Interfaces)
		if res := apply(); res.FullReplace || res.Unchanged() {
			t.Errorf("%s: want an incremental transaction, got %+v", step.Name, res)
		}
	}
}

func TestApplierSequenceConvergesIncrementally(t *testing.T) {
	f := NewFake("nftpolicy")
	runApplierSequence(t, NewApplier(f), func(desired *Ruleset) {
		if got, want := Render(f.Ruleset()), Render(desired); got != want {
			t.Fatalf("fake table differs from the compiled ruleset\n--- got\n%s\n--- want\n%s", got, want)
		}
	})
	for _, tx := range f.Transactions()[1:] {
		if strings.Contains(tx.String(), "delete table") {
			t.Errorf("an incremental transaction deleted the table:\n%s", tx)
		}
	}
}

func TestApplierTakesOverATableFromAPreviousRun(t *testing.T) {
	f := NewFake("nftpolicy")
	old := CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()}
	applyAndCheck(t, NewApplier(f), f, old)

	// A new process knows nothing of the kernel: its first transaction replaces the table in one
	// batch, so isolated pods are never open in between.
	in := CompileInput{Table: "nftpolicy", Model: guestbookModel()}
	in.Model.LocalPods = in.Model.LocalPods[1:]
	res := applyAndCheck(t, NewApplier(f), f, in)
	if !res.FullReplace {
		t.Fatalf("want a full replacement, got %+v", res)
	}
	txs := f.Transactions()
	ops := txs[len(txs)-1].Ops
	if _, ok := ops[0].(AddTable); !ok {
		t.Errorf("first op = %T, want AddTable (so that the delete cannot fail)", ops[0])
	}
	if _, ok := ops[1].(DeleteTable); !ok {
		t.Errorf("second op = %T, want DeleteTable", ops[1])
	}
}

func TestApplierAfterAFailureReplacesTheTable(t *testing.T) {
	f := NewFake("nftpolicy")
	a := NewApplier(f)
	in := CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()}
	applyAndCheck(t, a, f, in)

	// Another writer deletes a pod chain behind our back: the next diff refers to it and fails.
	tamper := &Transaction{Table: "nftpolicy", Ops: []Op{
		DeleteMapElements{Map: mapIngressPodsV4, Type: KeyIPv4, Elements: []MapElement{{Key: addr(guestbookIP), Verdict: Verdict{Kind: Goto, Chain: "in_default_guestbook-1"}}}},
		FlushChain{Name: "in_default_guestbook-1"}, DeleteChain{Name: "in_default_guestbook-1"},
	}}
	if err := f.Run(tamper); err != nil {
		t.Fatal(err)
	}
	in.Model.LocalPods[0].Ingress.Rules = []selectors.Rule{makeRule(0)}
	before := Render(f.Ruleset())
	if _, err := a.Apply(Compile(in), FullChanges()); err == nil {
		t.Fatal("apply over a tampered table succeeded; the fake should have rejected the flush of a missing chain")
	}
	if Render(f.Ruleset()) != before {
		t.Fatal("a failed transaction changed the table")
	}
	if a.Committed() != nil {
		t.Fatal("after a failure the applier must forget what it committed")
	}
	if res := applyAndCheck(t, a, f, in); !res.FullReplace {
		t.Errorf("after a failure the next apply must replace the table, got %+v", res)
	}
}

func TestFakeRejectsWhatTheKernelRejects(t *testing.T) {
	base := compileGuestbook()
	cases := []struct {
		name string
		op   Op
		want string
	}{
		{"a rule jumping to a missing chain", AddRule{Chain: chainEgress, Rule: Rule{Verdict: Verdict{Kind: Jump, Chain: "nope"}}}, "missing chain"},
		{"a rule using a missing set", AddRule{Chain: chainEgress, Rule: Rule{Matches: []Match{AddrInSet{Family: IPv4, Field: SourceAddr, Set: "nope"}}, Verdict: Verdict{Kind: Drop}}}, "missing set"},
		{"deleting a set in use", DeleteSet{Name: setPodIfaces}, "in use"},
		{"deleting a chain a map points to", DeleteChain{Name: "in_default_redis-master"}, "not empty"},
		{"deleting a missing element", DeleteElements{Set: setPodIfaces, Type: KeyIfname, Elements: []Element{{Ifname: "nope"}}}, "no element"},
		{"an overlapping interval", AddElements{Set: "peers_external_v4", Type: KeyIPv4, Interval: true, Elements: []Element{{Addr: addr("203.0.113.100"), AddrEnd: addr("203.0.113.200")}}}, "overlaps"},
		{"a duplicate map key", AddMapElements{Map: mapIngressPodsV4, Type: KeyIPv4, Elements: []MapElement{{Key: addr(redisIP), Verdict: Verdict{Kind: Drop}}}}, "already has key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake("nftpolicy")
			if err := f.Run(Diff(nil, base, FullChanges())); err != nil {
				t.Fatal(err)
			}
			before := Render(f.Ruleset())
			// A valid operation first: it must be rolled back with the rest.
			err := f.Run(&Transaction{Table: "nftpolicy", Ops: []Op{AddElements{Set: setPodIfaces, Type: KeyIfname, Elements: []Element{{Ifname: "veth-new"}}}, tc.op}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
			if Render(f.Ruleset()) != before {
				t.Fatal("a failed transaction changed the table")
			}
		})
	}
}

// scaledModel is a node with local pods 198.18.x.y (stride 2, so no two addresses merge into a
// range), each isolated for ingress by its own policy whose rule admits one of ten label groups.
func scaledModel(pods int) (*selectors.Model, map[netip.Addr]string) {
	m := &selectors.Model{Node: "n1"}
	ifaces := map[netip.Addr]string{}
	groups := make([][]selectors.AddrRange, 10)
	for i := 0; i < pods; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i * 2 / 256), byte(i * 2 % 256)})
		name := fmt.Sprintf("pod-%05d", i)
		m.LocalPods = append(m.LocalPods, makeLocalPod("bench", name, func(p *selectors.LocalPod) { p.IPs = []netip.Addr{ip} },
			isolatedIngress("policy-"+name, makeRule(0, fromPeers(fmt.Sprintf("group-%d", i%10)), onPorts(tcp(80))))))
		groups[i%10] = append(groups[i%10], selectors.AddrRange{From: ip, To: ip})
		ifaces[ip] = "veth-" + name
	}
	for g, ranges := range groups {
		m.AddressSets = append(m.AddressSets, selectors.AddressSet{ID: fmt.Sprintf("group-%d", g), Ranges: ranges})
	}
	return m, ifaces
}

func TestIncrementalCostDoesNotGrowWithScale(t *testing.T) {
	type cost struct{ ops, elements, rules int }
	measure := func(pods int, change func(m *selectors.Model, ifaces map[netip.Addr]string)) cost {
		m, ifaces := scaledModel(pods)
		f := NewFake("nftpolicy")
		a := NewApplier(f)
		in := CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces}
		if _, err := a.Apply(Compile(in), FullChanges()); err != nil {
			t.Fatal(err)
		}
		change(m, ifaces)
		res, err := a.Apply(Compile(in), FullChanges())
		if err != nil {
			t.Fatal(err)
		}
		return cost{res.Ops, res.Elements, res.Rules}
	}
	changes := map[string]func(m *selectors.Model, ifaces map[netip.Addr]string){
		"one pod's IP changes": func(m *selectors.Model, ifaces map[netip.Addr]string) {
			p := &m.LocalPods[3]
			old, ip := p.IPs[0], netip.MustParseAddr("198.18.250.1")
			p.IPs = []netip.Addr{ip}
			ifaces[ip] = ifaces[old]
			delete(ifaces, old)
			g := &m.AddressSets[3]
			for i := range g.Ranges {
				if g.Ranges[i].From == old {
					g.Ranges[i] = selectors.AddrRange{From: ip, To: ip}
				}
			}
		},
		"one pod's labels move it to another group": func(m *selectors.Model, _ map[netip.Addr]string) {
			ip := m.LocalPods[3].IPs[0]
			from, to := &m.AddressSets[3], &m.AddressSets[4]
			for i := range from.Ranges {
				if from.Ranges[i].From == ip {
					from.Ranges = append(from.Ranges[:i], from.Ranges[i+1:]...)
					break
				}
			}
			to.Ranges = append(to.Ranges, selectors.AddrRange{From: ip, To: ip})
		},
		"one policy is deleted": func(m *selectors.Model, _ map[netip.Addr]string) {
			m.LocalPods[3].Ingress = nil
		},
	}
	for name, change := range changes {
		small, large := measure(20, change), measure(2000, change)
		if small != large || small.ops == 0 {
			t.Errorf("%s: cost with 20 pods %+v, with 2000 pods %+v; want equal and non-zero", name, small, large)
		}
	}
}
