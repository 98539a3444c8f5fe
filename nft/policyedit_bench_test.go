package nft

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// BenchmarkKernelApplyPolicyEdit is the apply half of a policy edit at issue 5's scale: a policy
// selecting local pods changes a port, and Applier.Apply sends the rewritten rules. Each iteration
// applies the ruleset after or before the edit in turn.
func BenchmarkKernelApplyPolicyEdit(b *testing.B) {
	backend := benchNamespace(b)
	c, err := generator.Generate(generator.Defaults(5000, 1000, generator.DistinctSelectors))
	if err != nil {
		b.Fatal(err)
	}
	ifaces := map[netip.Addr]string{}
	before := selectors.Resolve(c.Snapshot)
	for i, p := range before.LocalPods {
		for _, ip := range p.IPs {
			ifaces[ip] = fmt.Sprintf("bench%d", i)
		}
	}
	if _, err := c.Apply(generator.PolicyEdit); err != nil {
		b.Fatal(err)
	}
	after := selectors.Resolve(c.Snapshot)
	var cc Compiler
	rulesets := []*Ruleset{
		cc.Compile(CompileInput{Table: "nftpolicy", Model: before, Interfaces: ifaces}),
		cc.Compile(CompileInput{Table: "nftpolicy", Model: after, Interfaces: ifaces}),
	}
	a := NewApplier(backend)
	if _, err := a.Apply(rulesets[0]); err != nil {
		b.Fatal(err)
	}
	tx := Diff(rulesets[0], rulesets[1])
	b.Logf("transaction of the edit:\n%s", tx)
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if _, err := a.Apply(rulesets[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
