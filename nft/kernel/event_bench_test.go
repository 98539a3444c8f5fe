package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"net/netip"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// BenchmarkKernelApplyEvent is the apply half of one event of the generator's: Applier.Apply sends
// what the event changed, each iteration applying the ruleset after or before the event in turn. A
// policy edit (a policy selecting local pods changes a port) rewrites rules; a pod's address change
// changes set elements only.
func BenchmarkKernelApplyEvent(b *testing.B) {
	for _, kind := range []generator.EventKind{generator.PolicyEdit, generator.PodIPChange} {
		b.Run(string(kind), func(b *testing.B) { benchApplyEvent(b, kind) })
	}
}

func benchApplyEvent(b *testing.B, kind generator.EventKind) {
	backend := benchNamespace(b)
	c, err := generator.Generate(generator.Defaults(5000, 1000, generator.DistinctSelectors))
	if err != nil {
		b.Fatal(err)
	}
	res := selectors.NewResolver(c.Snapshot.Node)
	res.Load(c.Snapshot)
	before, _ := res.Model()
	ifaces := map[netip.Addr]string{}
	for i, p := range before.LocalPods {
		for _, ip := range p.IPs {
			ifaces[ip] = fmt.Sprintf("bench%d", i)
		}
	}
	// Events change peers of the node, as the harness aims them (harness.TargetPeers).
	peers := map[netip.Addr]bool{}
	for _, s := range before.AddressSets {
		for _, r := range s.Ranges {
			peers[r.From] = r.From == r.To
		}
	}
	c.Target = func(p *selectors.Pod) bool { return len(p.IPs) > 0 && peers[p.IPs[0]] }
	var cc nft.Compiler
	first, _ := cc.Compile(nft.CompileInput{Table: "nftpolicy", Model: before, Changes: selectors.FullChanges(), Interfaces: ifaces})
	if _, err := c.Apply(kind); err != nil {
		b.Fatal(err)
	}
	switch ch := c.Last; {
	case ch.Pod != nil:
		res.SetPod(*ch.Pod)
	case ch.Policy != nil:
		res.SetPolicy(ch.Policy)
	default:
		b.Fatalf("event %s changed neither a pod nor a policy", kind)
	}
	after, changes := res.Model()
	second, changed := cc.Compile(nft.CompileInput{Table: "nftpolicy", Model: after, Changes: changes, Interfaces: ifaces})
	// The event's changes name what differs in either direction: the benchmark applies the two
	// rulesets in turn with them.
	rulesets := []*nft.Ruleset{first, second}
	a := nft.NewApplier(backend)
	if _, err := a.Apply(rulesets[0], nft.FullChanges()); err != nil {
		b.Fatal(err)
	}
	tx := nft.Diff(rulesets[0], rulesets[1], changed)
	if len(tx.Ops) == 0 {
		b.Fatal("the event changed nothing in the node's table")
	}
	b.Logf("transaction of the event:\n%s", tx)
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if _, err := a.Apply(rulesets[i%2], changed); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
