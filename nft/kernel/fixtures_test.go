package kernel

import (
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/nfttest"
)

// The shared test models of package nfttest, under the short names the nft package's tests use
// too. Their IP plan is documented there.
var (
	addr                = nfttest.Addr
	single              = nfttest.Single
	guestbookModel      = nfttest.GuestbookModel
	guestbookInterfaces = nfttest.GuestbookInterfaces
	emptyModel          = nfttest.EmptyModel
	benchModel          = nfttest.BenchModel
	movePod             = nfttest.MovePod
)

func compileGuestbook() *nft.Ruleset {
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()})
}

// compileGuestbookDropLog compiles the guestbook with drop logging on for redis-master and the
// anti-spoofing drops.
func compileGuestbookDropLog() *nft.Ruleset {
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(),
		DropLog: &nft.DropLog{Group: 7, PairRate: 5, Rate: 50, Pods: map[string]bool{"default/redis-master": true}, AntiSpoof: true}})
}

// runApplierSequence applies the guestbook model and then every change of nfttest.ApplierSequence through a,
// calling check with each desired ruleset after it committed.
func runApplierSequence(t *testing.T, a *nft.Applier, check func(desired *nft.Ruleset)) {
	t.Helper()
	in := nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()}
	apply := func() nft.ApplyResult {
		desired := nft.Compile(in)
		res, err := a.Apply(desired, nft.FullChanges())
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
	for _, step := range nfttest.ApplierSequence {
		step.Change(in.Model, in.Interfaces)
		if res := apply(); res.FullReplace || res.Unchanged() {
			t.Errorf("%s: want an incremental transaction, got %+v", step.Name, res)
		}
	}
}

// ndTypes are the ICMPv6 neighbour discovery types the compiler always accepts.
var ndTypes = []uint8{nft.ICMPv6RouterSolicit, nft.ICMPv6RouterAdvert, nft.ICMPv6NeighborSolicit, nft.ICMPv6NeighborAdvert, nft.ICMPv6Redirect}

// setPodAddrsV4 is the compiler's set of local IPv4 pod addresses.
const setPodAddrsV4 = "pod-addrs-v4"

func withoutElements(s nft.Set) nft.Set {
	s.Elements = nil
	return s
}

var benchSizes = []int{25000, 50000}
