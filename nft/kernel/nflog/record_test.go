package nflog

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlattr is one netlink attribute on the wire: a host-order {u16 len; u16 type} header, the data,
// padding to 4 bytes.
func nlattr(typ uint16, data []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// packetMessage is a NFULNL_MSG_PACKET of family with the given attributes, as the kernel sends it.
func packetMessage(family uint8, group uint16, attrs ...[]byte) netlink.Message {
	data := append([]byte{family, unix.NFNETLINK_V0}, be16(group)...)
	for _, a := range attrs {
		data = append(data, a...)
	}
	return netlink.Message{Header: netlink.Header{Type: packetMsgType}, Data: data}
}

// logged is a record of ipv4TCPSyn as nfnetlink_log sends it from the forward hook, with a
// timestamp of 1700000000.250000 and a prefix padded by a stray NUL.
func logged(t *testing.T, seq uint32) netlink.Message {
	payload := fromHex(t, ipv4TCPSyn)
	stamp := binary.BigEndian.AppendUint64(be64(1700000000), 250000)
	return packetMessage(unix.NFPROTO_IPV4, 7,
		nlattr(attrPacketHdr, append(be16(0x0800), unix.NF_INET_FORWARD, 0)),
		nlattr(attrMark, be32(0x10)),
		nlattr(attrTimestamp, stamp),
		nlattr(attrIfindexIn, be32(3)),
		nlattr(attrIfindexOut, be32(4)),
		nlattr(attrPayload, payload),
		nlattr(attrPrefix, []byte("np:in/a\x00\x00")),
		nlattr(attrSeq, be32(seq)),
	)
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestParseRecord(t *testing.T) {
	received := time.Unix(1800000000, 0)
	got, err := parseRecord(logged(t, 42), received)
	if err != nil {
		t.Fatal(err)
	}
	if got.Prefix != "np:in/a" || got.Family != unix.NFPROTO_IPV4 || got.HwProtocol != 0x0800 ||
		got.Hook != unix.NF_INET_FORWARD || got.InIfindex != 3 || got.OutIfindex != 4 || got.Mark != 0x10 || got.Seq != 42 {
		t.Errorf("got %+v", got)
	}
	if want := time.Unix(1700000000, 250000000); !got.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want the kernel's %v", got.Timestamp, want)
	}
	p, err := got.Packet()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoTCP, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}); p != want {
		t.Errorf("packet %+v, want %+v", p, want)
	}
}

// TestParseRecordMinimal: the output hook has no input device, and packets of local sockets carry no
// timestamp unless something asked for one: the receive time stands in.
func TestParseRecordMinimal(t *testing.T) {
	received := time.Unix(1800000000, 0)
	got, err := parseRecord(packetMessage(unix.NFPROTO_IPV6, 7,
		nlattr(attrPacketHdr, append(be16(0x86dd), unix.NF_INET_LOCAL_OUT, 0)),
		nlattr(attrPayload, fromHex(t, ipv6UDP)),
	), received)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Timestamp.Equal(received) || got.Prefix != "" || got.InIfindex != 0 || got.Family != unix.NFPROTO_IPV6 {
		t.Errorf("got %+v", got)
	}
}

func TestParseRecordRejectsMalformed(t *testing.T) {
	hdr := nlattr(attrPacketHdr, append(be16(0x0800), unix.NF_INET_FORWARD, 0))
	for name, m := range map[string]netlink.Message{
		"short nfgenmsg":     {Header: netlink.Header{Type: packetMsgType}, Data: []byte{2, 0}},
		"no packet header":   packetMessage(unix.NFPROTO_IPV4, 7, nlattr(attrPrefix, []byte("x\x00"))),
		"short header":       packetMessage(unix.NFPROTO_IPV4, 7, nlattr(attrPacketHdr, be16(0x0800))),
		"short timestamp":    packetMessage(unix.NFPROTO_IPV4, 7, hdr, nlattr(attrTimestamp, be64(1))),
		"ifindex of 2 bytes": packetMessage(unix.NFPROTO_IPV4, 7, hdr, nlattr(attrIfindexIn, be16(1))),
		"attribute overruns": packetMessage(unix.NFPROTO_IPV4, 7, hdr, nlattr(attrPayload, []byte{1, 2, 3, 4})[:6]),
	} {
		if r, err := parseRecord(m, time.Now()); err == nil {
			t.Errorf("%s: got %+v, want an error", name, r)
		}
	}
}

// TestDeliverCountsLost: gaps in the records' numbers are lost records, and other message types
// are skipped.
func TestDeliverCountsLost(t *testing.T) {
	r := &Reader{group: 7}
	other := netlink.Message{Header: netlink.Header{Type: netlink.Done}}
	var seqs []uint32
	handle := func(rec Record) { seqs = append(seqs, rec.Seq) }
	if err := r.deliver([]netlink.Message{logged(t, 5), other, logged(t, 6), logged(t, 9)}, time.Now(), handle); err != nil {
		t.Fatal(err)
	}
	if err := r.deliver([]netlink.Message{logged(t, 10), logged(t, 12)}, time.Now(), handle); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 5 || r.Lost() != 3 {
		t.Errorf("delivered %v, lost %d; want 5 records and 3 lost", seqs, r.Lost())
	}
	bad := packetMessage(unix.NFPROTO_IPV4, 7)
	if err := r.deliver([]netlink.Message{bad}, time.Now(), handle); !errors.Is(err, errNoPacketHeader) {
		t.Errorf("delivering a record without header: %v, want errNoPacketHeader", err)
	}
}
