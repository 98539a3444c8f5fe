package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// capturedBatch lowers tx onto a connection that captures the batch instead of sending it, and
// returns its nf_tables messages (batch begin and end left out).
func capturedBatch(t *testing.T, tx *nft.Transaction) []netlink.Message {
	t.Helper()
	var msgs []netlink.Message
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			if m.Header.Type>>8 == unix.NFNL_SUBSYS_NFTABLES {
				msgs = append(msgs, m)
			}
		}
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := newLowering(conn, tx.Table, newAnonymousSetNames()).transaction(tx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// batchOrder returns the messages of tx's batch as "NEWSET", "NEWSETELEM s", "NEWRULE", ... in the
// order the kernel would apply them.
func batchOrder(t *testing.T, tx *nft.Transaction) []string {
	t.Helper()
	names := map[uint16]string{
		unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE",
		unix.NFT_MSG_NEWSET: "NEWSET", unix.NFT_MSG_DELSET: "DELSET",
		unix.NFT_MSG_NEWSETELEM: "NEWSETELEM", unix.NFT_MSG_DELSETELEM: "DELSETELEM",
		unix.NFT_MSG_NEWCHAIN: "NEWCHAIN", unix.NFT_MSG_DELCHAIN: "DELCHAIN",
		unix.NFT_MSG_NEWRULE: "NEWRULE", unix.NFT_MSG_DELRULE: "DELRULE",
	}
	var order []string
	for _, m := range capturedBatch(t, tx) {
		name := names[uint16(m.Header.Type&0xff)]
		if strings.HasSuffix(name, "SETELEM") {
			set := decodeElementMessage(t, m).set
			if strings.HasPrefix(set, "__set") {
				set = "anonymous"
			}
			name += " " + set
		}
		order = append(order, name)
	}
	return order
}

// TestElementsOfNewSetsGoLast: the elements of the sets a batch creates are queued after its rules
// (the kernel walks the batch for each anonymous set a rule binds), but before any deletion, while
// element changes of existing sets keep their place.
func TestElementsOfNewSetsGoLast(t *testing.T) {
	hosts := []nft.Element{{Addr: addr("10.0.0.1")}}
	ports := nft.Rule{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{nft.ProtoTCP}}, nft.DestPortIn{Ranges: []nft.PortRange{{First: 80, Last: 80}, {First: 443, Last: 443}}}}, Verdict: nft.Verdict{Kind: nft.Accept}}
	tx := &nft.Transaction{Table: "t", Ops: []nft.Op{
		nft.DeleteElements{Set: "old", Type: nft.KeyIPv4, Elements: hosts},
		nft.AddSet{Set: nft.Set{Name: "new", Type: nft.KeyIPv4}},
		nft.AddElements{Set: "new", Type: nft.KeyIPv4, Elements: hosts},
		nft.AddElements{Set: "old", Type: nft.KeyIPv4, Elements: hosts},
		nft.AddChain{Chain: nft.Chain{Name: "c"}},
		nft.AddRule{Chain: "c", Rule: ports},
		nft.DeleteSet{Name: "gone"},
		nft.AddSet{Set: nft.Set{Name: "last", Type: nft.KeyIPv4}},
		nft.AddElements{Set: "last", Type: nft.KeyIPv4, Elements: hosts},
		nft.AddRule{Chain: "c", Rule: ports},
	}}
	got := strings.Join(batchOrder(t, tx), ", ")
	want := strings.Join([]string{
		"DELSETELEM old", "NEWSET", "NEWSETELEM old", "NEWCHAIN",
		"NEWSET", "NEWSETELEM anonymous", "NEWRULE", // the port set of the rule, then the rule
		"NEWSETELEM new", // held back until the deletion
		"DELSET", "NEWSET",
		"NEWSET", "NEWSETELEM anonymous", "NEWRULE",
		"NEWSETELEM last", // held back until the end
	}, ", ")
	if got != want {
		t.Errorf("batch order:\n got %s\nwant %s", got, want)
	}
}
