package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// capturedBatch lowers tx onto a connection that captures the batch instead of sending it, and
// returns its nf_tables messages (batch begin and end left out).
func capturedBatch(t *testing.T, tx *Transaction) []netlink.Message {
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
func batchOrder(t *testing.T, tx *Transaction) []string {
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
	hosts := []Element{{Addr: addr("10.0.0.1")}}
	ports := Rule{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP}}, DestPortIn{Ranges: []PortRange{{80, 80}, {443, 443}}}}, Verdict: Verdict{Kind: Accept}}
	tx := &Transaction{Table: "t", Ops: []Op{
		DeleteElements{Set: "old", Type: KeyIPv4, Elements: hosts},
		AddSet{Set: Set{Name: "new", Type: KeyIPv4}},
		AddElements{Set: "new", Type: KeyIPv4, Elements: hosts},
		AddElements{Set: "old", Type: KeyIPv4, Elements: hosts},
		AddChain{Chain: Chain{Name: "c"}},
		AddRule{Chain: "c", Rule: ports},
		DeleteSet{Name: "gone"},
		AddSet{Set: Set{Name: "last", Type: KeyIPv4}},
		AddElements{Set: "last", Type: KeyIPv4, Elements: hosts},
		AddRule{Chain: "c", Rule: ports},
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
