package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// BenchmarkCompilePeerEvent is the Compiler's cost for the commonest event: a pod that is only a
// peer (not on the node) changes address, so one peer set changes and nothing local does. Each
// iteration compiles the model after or before the change, as selectors.Resolver hands them out
// (every other slice shared).
func BenchmarkCompilePeerEvent(b *testing.B) {
	for _, pods := range benchSizes {
		m0, ifaces := benchModel(pods)
		m1 := *m0
		m1.AddressSets = slices.Clone(m0.AddressSets)
		ranges := slices.Clone(m0.AddressSets[0].Ranges)
		last := len(ranges) - 1 // a remote pod: local pods have the lowest addresses
		moved := netip.MustParseAddr("198.19.255.1")
		ranges[last] = selectors.AddrRange{From: moved, To: moved}
		m1.AddressSets[0].Ranges = ranges
		changes := selectors.Changes{AddressSets: sets.New(m0.AddressSets[0].ID)}
		benchAlternatingCompiles(b, pods, CompileInput{Table: "nftpolicy", Model: m0, Changes: changes, Interfaces: ifaces}, CompileInput{Table: "nftpolicy", Model: &m1, Changes: changes, Interfaces: ifaces})
	}
}

// benchAlternatingCompiles times one Compiler compiling before and after in turn, the first call
// (a full lowering) excluded. Both inputs carry the Changes between them.
func benchAlternatingCompiles(b *testing.B, pods int, before, after CompileInput) {
	b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
		inputs := []CompileInput{before, after}
		var cc Compiler
		full := before
		full.Changes = selectors.FullChanges()
		cc.Compile(full)
		b.ReportAllocs()
		i := 1
		for b.Loop() {
			cc.Compile(inputs[i%2])
			i++
		}
	})
}
