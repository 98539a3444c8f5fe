package nft

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// TestEveryPolicyRuleAndDefaultDenyCounts: each accept of a policy chain updates its rule's counter,
// each final drop of a pod chain its namespace's default deny, and the Ruleset holds exactly the
// counters its rules use, with their labels.
func TestEveryPolicyRuleAndDefaultDenyCounts(t *testing.T) {
	rs := compileGuestbook()
	used := sets.New[string]()
	for _, c := range rs.Chains {
		for i, r := range c.Rules {
			isPolicyRule := strings.HasPrefix(c.Name, policyIngressChainPrefix) || strings.HasPrefix(c.Name, policyEgressChainPrefix)
			isDeny := (strings.HasPrefix(c.Name, podIngressChainPrefix) || strings.HasPrefix(c.Name, podEgressChainPrefix)) && i == len(c.Rules)-1
			if (isPolicyRule || isDeny) != (r.Counter != "") {
				t.Errorf("chain %s rule %d (%s): counter %q", c.Name, i, RenderRule(r), r.Counter)
			}
			if r.Counter != "" {
				used.Insert(r.Counter)
			}
		}
	}
	var names []string
	for _, c := range rs.Counters {
		names = append(names, c.Name)
	}
	if !slices.IsSorted(names) || !sets.New(names...).Equal(used) {
		t.Errorf("counters %q, want the %q the rules use, sorted", names, sets.List(used))
	}
	want := map[string]CounterLabels{
		"allow-in_default_redis-policy_0":     {Namespace: "default", Direction: selectors.Ingress, Policy: "redis-policy", Rule: 0},
		"allow-eg_default_guestbook-egress_3": {Namespace: "default", Direction: selectors.Egress, Policy: "guestbook-egress", Rule: 3},
		"deny-in_default":                     {Namespace: "default", Direction: selectors.Ingress},
		"deny-eg_default":                     {Namespace: "default", Direction: selectors.Egress},
	}
	for name, labels := range want {
		c, ok := rs.CounterByName(name)
		if !ok || c.Labels != labels {
			t.Errorf("counter %s = %+v (found %t), want labels %+v", name, c.Labels, ok, labels)
		}
	}
	if c, _ := rs.CounterByName("deny-in_default"); !c.Labels.DefaultDeny() {
		t.Error("deny-in_default is not a default deny")
	}
}

// TestTraceNamesTheCountersOfItsPath: an allowed packet updates the counters of the egress rule and
// the ingress rule that admit it, and nothing else; the counters do not change verdicts.
func TestTraceNamesTheCountersOfItsPath(t *testing.T) {
	rs := compileGuestbook()
	got := Trace(rs, Packet{Hook: HookForward, Iifname: guestbkIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379})
	if got.Verdict != Accept {
		t.Fatalf("guestbook -> redis:6379 dropped")
	}
	var counters []string
	for _, s := range got.Steps {
		if s.Counter != "" {
			counters = append(counters, s.Counter)
		}
	}
	if want := []string{"allow-eg_default_guestbook-egress_0", "allow-in_default_redis-policy_0"}; !slices.Equal(counters, want) {
		t.Errorf("counters on the path: %q, want %q", counters, want)
	}
}

// TestPolicyEditKeepsCountersAndRemovalDeletesThem: an edit of a rule's ports refills its chain but
// leaves its counter alone (re-creating it would reset it); a rule removed takes its counter with
// it, deleted after the rules using it, in the same transaction, which the fake accepts.
func TestPolicyEditKeepsCountersAndRemovalDeletesThem(t *testing.T) {
	fake := NewFake("nftpolicy")
	applier := NewApplier(fake)
	var cc Compiler
	apply := func(m *selectors.Model, changes selectors.Changes) *Transaction {
		t.Helper()
		rs, changed := cc.Compile(CompileInput{Table: "nftpolicy", Model: m, Changes: changes})
		before := len(fake.Transactions())
		if _, err := applier.Apply(rs, changed); err != nil {
			t.Fatal(err)
		}
		if txs := fake.Transactions(); len(txs) > before {
			return txs[len(txs)-1]
		}
		return &Transaction{Table: "nftpolicy"}
	}
	counterOps := func(tx *Transaction) []string {
		var out []string
		for _, op := range tx.Ops {
			switch op.(type) {
			case AddCounter, DeleteCounter:
				out = append(out, RenderOp(tx.Table, op))
			}
		}
		return out
	}
	web := selectors.Changes{Policies: sets.New(selectors.PolicyRef{Namespace: "shop", Name: "web"})}
	apply(policyChainsModel(80, 80), selectors.FullChanges())

	if ops := counterOps(apply(policyChainsModel(443, 443), web)); len(ops) != 0 {
		t.Errorf("a port edit touched counters: %q", ops)
	}

	// web loses its rule on a and b: a's ingress then only drops.
	edited := policyChainsModel(443, 443)
	for i := range edited.LocalPods {
		iso := edited.LocalPods[i].Ingress
		iso.Rules = slices.DeleteFunc(slices.Clone(iso.Rules), func(r selectors.Rule) bool { return r.Policy.Name == "web" })
	}
	tx := apply(edited, web)
	if ops := counterOps(tx); !slices.Equal(ops, []string{"delete counter inet nftpolicy allow-in_shop_web_0"}) {
		t.Errorf("removing web's rule: counter operations %q, want its counter deleted", ops)
	}
	flush := slices.IndexFunc(tx.Ops, func(op Op) bool { return op == Op(FlushChain{Name: "pi_shop_web"}) })
	del := slices.IndexFunc(tx.Ops, func(op Op) bool { return op == Op(DeleteCounter{Name: "allow-in_shop_web_0"}) })
	if flush < 0 || del < flush {
		t.Errorf("the counter is not deleted after the rules using it:\n%s", tx)
	}
	if c := fake.Ruleset().Counters; slices.ContainsFunc(c, func(c Counter) bool { return c.Name == "allow-in_shop_web_0" }) {
		t.Error("the fake still holds the deleted counter")
	}
}

func TestPodDenyCountersOption(t *testing.T) {
	rs := Compile(CompileInput{Table: "nftpolicy", Model: policyChainsModel(80, 80), PodDenyCounters: true})
	c, ok := rs.CounterByName("deny-in_shop_a")
	if !ok || c.Labels != (CounterLabels{Namespace: "shop", Direction: selectors.Ingress, Pod: "a"}) {
		t.Errorf("pod a's default deny counter: %+v (found %t)", c, ok)
	}
	if _, ok := rs.CounterByName("deny-in_shop"); ok {
		t.Error("a namespace counter beside the per-pod ones")
	}
	if off := Compile(CompileInput{Table: "nftpolicy", Model: policyChainsModel(80, 80)}); len(off.Counters) != len(rs.Counters)-2 {
		t.Errorf("%d counters without the option, want one deny counter for shop instead of three", len(off.Counters))
	}
}

func TestLongCounterNamesAreTruncatedAndDistinct(t *testing.T) {
	long := strings.Repeat("p", 200)
	a := ruleCounter(selectors.Rule{Policy: selectors.PolicyRef{Namespace: "ns", Name: long}, Index: 1}, selectors.Ingress)
	b := ruleCounter(selectors.Rule{Policy: selectors.PolicyRef{Namespace: "ns", Name: long}, Index: 2}, selectors.Ingress)
	if len(a.Name) > maxNameLen || len(b.Name) > maxNameLen || a.Name == b.Name {
		t.Errorf("names %q and %q: want distinct names of at most %d bytes", a.Name, b.Name, maxNameLen)
	}
	if a.Labels.Policy != long || a.Labels.Rule != 1 {
		t.Errorf("labels of a truncated name: %+v", a.Labels)
	}
}

func TestFakeRejectsMissingAndUsedCounters(t *testing.T) {
	f := NewFake("t")
	rule := Rule{Counter: "c", Verdict: Verdict{Kind: Drop}}
	err := f.Run(&Transaction{Table: "t", Ops: []Op{AddTable{}, AddChain{Chain: Chain{Name: "x"}}, AddRule{Chain: "x", Rule: rule}}})
	if err == nil || !strings.Contains(err.Error(), "missing counter c") {
		t.Errorf("a rule naming a missing counter: %v", err)
	}
	if err := f.Run(&Transaction{Table: "t", Ops: []Op{AddTable{}, AddCounter{Counter: Counter{Name: "c"}}, AddChain{Chain: Chain{Name: "x"}}, AddRule{Chain: "x", Rule: rule}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Run(&Transaction{Table: "t", Ops: []Op{DeleteCounter{Name: "c"}}}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("deleting a counter in use: %v", err)
	}
}
