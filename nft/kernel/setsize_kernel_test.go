package kernel

import (
	"fmt"
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// peerModel is the guestbook with n addresses in the redis peer set (as in the nft package's tests).
func peerModel(n int) *selectors.Model {
	var ips []string
	for i := range n {
		ips = append(ips, netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(1 + i%250)}).String())
	}
	m := guestbookModel()
	for i := range m.AddressSets {
		if m.AddressSets[i].ID == "redis" {
			m.AddressSets[i].Ranges = single(ips...)
		}
	}
	return m
}

// TestKernelRefusesElementsBeyondTheSize checks the fake's rule against the kernel: a set's size is a
// hard limit, and the transaction that passes it fails as a whole.
func TestKernelRefusesElementsBeyondTheSize(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := &nft.Ruleset{Table: kernelTable, Sets: []nft.Set{{Name: "small", Type: nft.KeyIPv4, Size: 2}}}
	run(t, b, replaceTable(rs))
	assertListing(t, ns, rs)
	var elems []nft.Element
	for i := range 3 {
		elems = append(elems, nft.Element{Addr: addr(fmt.Sprintf("10.0.0.%d", i+1))})
	}
	if err := b.Run(&nft.Transaction{Table: kernelTable, Ops: []nft.Op{nft.AddElements{Set: "small", Type: nft.KeyIPv4, Elements: elems}}}); err == nil {
		t.Fatal("the kernel took three elements into a set of size 2")
	}
	assertListing(t, ns, rs)
	run(t, b, &nft.Transaction{Table: kernelTable, Ops: []nft.Op{nft.AddElements{Set: "small", Type: nft.KeyIPv4, Elements: elems[:2]}}})
	rs.Sets[0].Elements = elems[:2]
	assertListing(t, ns, rs)
}

// TestKernelReplacesASetOutgrowingItsSizeInOneBatch runs the same growth against the kernel: the
// batch that deletes and re-creates the set under its name, with the chain using it flushed and
// refilled, is accepted, and the kernel then holds exactly the desired table.
func TestKernelReplacesASetOutgrowingItsSizeInOneBatch(t *testing.T) {
	ns, b := kernelNamespace(t)
	var cc nft.Compiler
	a := nft.NewApplier(b)
	for _, n := range []int{10, 64, 65, 300, 20} {
		in := nft.CompileInput{Table: kernelTable, Model: peerModel(n), Changes: selectors.Changes{AddressSets: sets.New("redis")}, Interfaces: guestbookInterfaces()}
		rs, changed := cc.Compile(in)
		if _, err := a.Apply(rs, changed); err != nil {
			t.Fatalf("%d peers: %v", n, err)
		}
		assertSameContent(t, ns, rs)
	}
}
