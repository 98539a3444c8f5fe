package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sentElement is one element as it travels in a NEWSETELEM or DELSETELEM message.
type sentElement struct {
	key         []byte
	intervalEnd bool
	hasVerdict  bool
}

// elementMessage is one element message of a batch, decoded.
type elementMessage struct {
	add       bool
	set       string
	listBytes int // length of the attribute holding the elements
	elems     []sentElement
}

// lowerAndCapture lowers tx onto a connection that captures the batch instead of sending it, and
// returns its element messages decoded.
func lowerAndCapture(t *testing.T, tx *nft.Transaction) []elementMessage {
	t.Helper()
	var msgs []elementMessage
	for _, m := range capturedBatch(t, tx) {
		switch m.Header.Type & 0xff {
		case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
			msgs = append(msgs, decodeElementMessage(t, m))
		}
	}
	return msgs
}

func decodeElementMessage(t *testing.T, m netlink.Message) elementMessage {
	t.Helper()
	out := elementMessage{add: m.Header.Type&0xff == unix.NFT_MSG_NEWSETELEM}
	data := m.Data[4:] // struct nfgenmsg
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; ad.Next(); {
		// The decoder does not expose an attribute's own length field; read it from the bytes.
		length := int(binary.NativeEndian.Uint16(data[off:]))
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			out.set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			out.listBytes = length
			ad.Nested(func(elems *netlink.AttributeDecoder) error {
				for elems.Next() {
					elems.Nested(func(attrs *netlink.AttributeDecoder) error {
						out.elems = append(out.elems, decodeElement(attrs))
						return nil
					})
				}
				return nil
			})
		}
		off += align4(length)
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeElement(attrs *netlink.AttributeDecoder) sentElement {
	var e sentElement
	for attrs.Next() {
		switch attrs.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			attrs.Nested(func(value *netlink.AttributeDecoder) error {
				for value.Next() {
					e.key = value.Bytes()
				}
				return nil
			})
		case unix.NFTA_SET_ELEM_FLAGS:
			e.intervalEnd = binary.BigEndian.Uint32(attrs.Bytes())&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_DATA:
			e.hasVerdict = true
		}
	}
	return e
}

// ipv4Hosts returns n addresses from 10.0.0.1 on, two apart so that none are adjacent.
func ipv4Hosts(n int) []nft.Element {
	out := make([]nft.Element, n)
	for i := range out {
		v := 2*i + 1
		out[i] = nft.Element{Addr: netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})}
	}
	return out
}

// TestElementMessagesCarryEveryKeyType checks the bytes of one element of every key type, interval
// starts and ends (and the open end of a range that reaches the last address), and map verdicts.
func TestElementMessagesCarryEveryKeyType(t *testing.T) {
	tx := &nft.Transaction{Table: "t", Ops: []nft.Op{
		nft.AddElements{Set: "v4", Type: nft.KeyIPv4, Elements: []nft.Element{{Addr: addr("10.0.0.1")}}},
		nft.AddElements{Set: "v6", Type: nft.KeyIPv6, Elements: []nft.Element{{Addr: addr("fd00::1")}}},
		nft.AddElements{Set: "ranges", Type: nft.KeyIPv4, Interval: true, Elements: []nft.Element{
			{Addr: addr("10.0.0.1")},
			{Addr: addr("10.1.0.0"), AddrEnd: addr("10.1.255.255")},
			{Addr: addr("255.255.255.0"), AddrEnd: addr("255.255.255.255")},
		}},
		nft.AddElements{Set: "ifnames", Type: nft.KeyIfname, Elements: []nft.Element{{Ifname: "veth0"}}},
		nft.AddElements{Set: "spoof", Type: nft.KeyIfnameIPv4, Elements: []nft.Element{{Ifname: "veth0", Addr: addr("10.0.0.1")}}},
		nft.AddElements{Set: "spoof6", Type: nft.KeyIfnameIPv6, Elements: []nft.Element{{Ifname: "veth0", Addr: addr("fd00::1")}}},
		nft.AddElements{Set: "svc", Type: nft.KeyIPv4ProtoPort, Elements: []nft.Element{{Addr: addr("10.0.0.1"), Proto: nft.ProtoTCP, Port: 8080}}},
		nft.AddElements{Set: "svc6", Type: nft.KeyIPv6ProtoPort, Elements: []nft.Element{{Addr: addr("fd00::1"), Proto: nft.ProtoUDP, Port: 53}}},
		nft.AddMapElements{Map: "vmap", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: addr("10.0.0.1"), Verdict: nft.Verdict{Kind: nft.Goto, Chain: "pod-a"}}}},
		nft.DeleteMapElements{Map: "vmap", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: addr("10.0.0.2")}}},
		nft.DeleteElements{Set: "v4", Type: nft.KeyIPv4, Elements: []nft.Element{{Addr: addr("10.0.0.3")}}},
	}}
	veth0 := []byte("veth0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	v6 := netip.MustParseAddr("fd00::1").As16()
	want := []string{
		"add v4: 0a000001",
		"add v6: " + fmt.Sprintf("%x", v6),
		"add ranges: 0a000001 0a000002/end 0a010000 0a020000/end ffffff00",
		fmt.Sprintf("add ifnames: %x", veth0),
		fmt.Sprintf("add spoof: %x0a000001", veth0),
		fmt.Sprintf("add spoof6: %x%x", veth0, v6),
		"add svc: 0a000001060000001f900000",
		fmt.Sprintf("add svc6: %x1100000000350000", v6),
		"add vmap: 0a000001/verdict",
		"delete vmap: 0a000002",
		"delete v4: 0a000003",
	}
	msgs := lowerAndCapture(t, tx)
	var got []string
	for _, m := range msgs {
		got = append(got, m.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("element messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (m elementMessage) String() string {
	verb := "delete"
	if m.add {
		verb = "add"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s:", verb, m.set)
	for _, e := range m.elems {
		fmt.Fprintf(&b, " %x", e.key)
		if e.intervalEnd {
			b.WriteString("/end")
		}
		if e.hasVerdict {
			b.WriteString("/verdict")
		}
	}
	return b.String()
}

// TestLargeSetsSpreadOverMessagesThatFit sends sets larger than one message: every message stays
// under the 16-bit attribute length, no interval is split between two messages, and every element
// arrives once, in order, although the messages were encoded in reused buffers.
func TestLargeSetsSpreadOverMessagesThatFit(t *testing.T) {
	hosts := ipv4Hosts(20000)
	ranges := make([]nft.Element, 5000)
	for i := range ranges {
		ranges[i] = nft.Element{Addr: hosts[2*i].Addr, AddrEnd: hosts[2*i].Addr.Next()}
	}
	services := make([]nft.Element, 9000)
	for i := range services {
		services[i] = nft.Element{Addr: hosts[i].Addr, Proto: nft.ProtoTCP, Port: uint16(i)}
	}
	tx := &nft.Transaction{Table: "t", Ops: []nft.Op{
		nft.AddElements{Set: "hosts", Type: nft.KeyIPv4, Elements: hosts},
		nft.AddElements{Set: "ranges", Type: nft.KeyIPv4, Interval: true, Elements: ranges},
		nft.DeleteElements{Set: "services", Type: nft.KeyIPv4ProtoPort, Elements: services},
	}}
	msgs := lowerAndCapture(t, tx)
	perSet := map[string][]sentElement{}
	count := map[string]int{}
	for _, m := range msgs {
		if m.listBytes > 0xffff || m.listBytes > maxElementListBytes+nlaHeaderLen {
			t.Errorf("a message of %s holds %d bytes of elements", m.set, m.listBytes)
		}
		if last := m.elems[len(m.elems)-1]; m.set == "ranges" && !last.intervalEnd {
			t.Errorf("a message of %s ends with the start of a range", m.set)
		}
		perSet[m.set] = append(perSet[m.set], m.elems...)
		count[m.set]++
	}
	if count["hosts"] < 2 || count["ranges"] < 2 || count["services"] < 2 {
		t.Errorf("messages per set: %v, want several each", count)
	}
	check := func(set string, t nft.KeyType, interval bool, elems []nft.Element) error {
		var want [][]byte
		for _, e := range elems {
			keys, err := appendKey(nil, t, e)
			if err != nil {
				return err
			}
			want = append(want, keys)
			if interval {
				keys, _ := appendAddr(nil, t, e.AddrEnd.Next())
				want = append(want, keys)
			}
		}
		got := perSet[set]
		if len(got) != len(want) {
			return fmt.Errorf("%s: %d elements sent, want %d", set, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].key, want[i]) || got[i].intervalEnd != (interval && i%2 == 1) {
				return fmt.Errorf("%s: element %d is %x (end %v), want %x", set, i, got[i].key, got[i].intervalEnd, want[i])
			}
		}
		return nil
	}
	for _, err := range []error{
		check("hosts", nft.KeyIPv4, false, hosts),
		check("ranges", nft.KeyIPv4, true, ranges),
		check("services", nft.KeyIPv4ProtoPort, false, services),
	} {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestElementErrorsNameTheSet: elements that do not fit their set's type fail the lowering.
func TestElementErrorsNameTheSet(t *testing.T) {
	for _, op := range []nft.Op{
		nft.AddElements{Set: "v4", Type: nft.KeyIPv4, Elements: []nft.Element{{Addr: addr("fd00::1")}}},
		nft.AddElements{Set: "r", Type: nft.KeyIPv4, Interval: true, Elements: []nft.Element{{Addr: addr("10.0.0.2"), AddrEnd: addr("10.0.0.1")}}},
		nft.AddElements{Set: "if", Type: nft.KeyIfname, Elements: []nft.Element{{Ifname: "a-name-that-is-too-long"}}},
		nft.AddElements{Set: "k", Type: nft.KeyType("ether_addr"), Elements: []nft.Element{{Addr: addr("10.0.0.1")}}},
		nft.AddMapElements{Map: "m", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: addr("10.0.0.1"), Verdict: nft.Verdict{Kind: nft.Goto}}}},
	} {
		conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) { return req, nil }))
		if err != nil {
			t.Fatal(err)
		}
		err = newLowering(conn, "t", newAnonymousSetNames()).op(op)
		if err == nil {
			t.Errorf("%s: no error", nft.RenderOp("t", op))
		}
	}
}

// TestAnonymousSetNamesAreUniqueAndLiteral: the kernel takes a name without "%d" as it is, so the
// names of one backend never repeat and those of two backends differ.
func TestAnonymousSetNamesAreUniqueAndLiteral(t *testing.T) {
	a, b := newAnonymousSetNames(), newAnonymousSetNames()
	seen := map[string]bool{}
	for range 1000 {
		for _, n := range []string{a.name(), b.name()} {
			if seen[n] || strings.Contains(n, "%") || !strings.HasPrefix(n, "__set") || len(n) >= 32 {
				t.Fatalf("anonymous set name %q: repeated, a template, or unlike nft's", n)
			}
			seen[n] = true
		}
	}
}
