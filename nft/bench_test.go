package nft

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// movedCopy is m after movePod, as selectors.Resolver hands it out: a new model sharing every
// unchanged slice with m, with new slices only where the move changed something.
func movedCopy(m *selectors.Model, ifaces map[netip.Addr]string, to netip.Addr) (*selectors.Model, map[netip.Addr]string) {
	next := *m
	next.LocalPods = slices.Clone(m.LocalPods)
	next.AddressSets = slices.Clone(m.AddressSets)
	next.AddressSets[0].Ranges = slices.Clone(m.AddressSets[0].Ranges)
	nextIfaces := maps.Clone(ifaces)
	movePod(&next, nextIfaces, to)
	return &next, nextIfaces
}

var benchSizes = []int{25000, 50000}

func BenchmarkCompile(b *testing.B) {
	for _, pods := range benchSizes {
		m, ifaces := benchModel(pods)
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			for b.Loop() {
				Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
			}
		})
	}
}

// BenchmarkDiff compares computing a full replacement (the baseline) with the diff of a one-pod change.
func BenchmarkDiff(b *testing.B) {
	for _, pods := range benchSizes {
		m, ifaces := benchModel(pods)
		before := Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
		movePod(m, ifaces, netip.MustParseAddr("198.19.255.1"))
		after := Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
		b.Run(fmt.Sprintf("full/pods=%d", pods), func(b *testing.B) {
			for b.Loop() {
				Diff(nil, after, FullChanges())
			}
		})
		b.Run(fmt.Sprintf("one-pod/pods=%d", pods), func(b *testing.B) {
			for b.Loop() {
				Diff(before, after, FullChanges())
			}
		})
		// As the agent runs it: the Compiler names what the move changed, and the diff compares
		// only that.
		m0, ifaces0 := benchModel(pods)
		m1, ifaces1 := movedCopy(m0, ifaces0, netip.MustParseAddr("198.19.255.1"))
		var cc Compiler
		compiledBefore, _ := cc.Compile(CompileInput{Table: "nftpolicy", Model: m0, Interfaces: ifaces0})
		compiledAfter, changed := cc.Compile(CompileInput{Table: "nftpolicy", Model: m1, Changes: moveChanges(m0), Interfaces: ifaces1})
		b.Run(fmt.Sprintf("one-pod-compiler/pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Diff(compiledBefore, compiledAfter, changed)
			}
		})
	}
}

// moveChanges is what selectors.Resolver reports for movePod: local pod 0 and the first peer set.
func moveChanges(m *selectors.Model) selectors.Changes {
	return selectors.Changes{LocalPods: sets.New(m.LocalPods[0].Key()), AddressSets: sets.New(m.AddressSets[0].ID)}
}

// BenchmarkCompileOnePod is the Compiler's cost per event: each iteration compiles the model after
// or before a one-pod move, with the previous one remembered.
func BenchmarkCompileOnePod(b *testing.B) {
	for _, pods := range benchSizes {
		m0, ifaces0 := benchModel(pods)
		m1, ifaces1 := movedCopy(m0, ifaces0, netip.MustParseAddr("198.19.255.1"))
		changes := moveChanges(m0)
		benchAlternatingCompiles(b, pods, CompileInput{Table: "nftpolicy", Model: m0, Changes: changes, Interfaces: ifaces0}, CompileInput{Table: "nftpolicy", Model: m1, Changes: changes, Interfaces: ifaces1})
	}
}
