package nflog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Record is one packet logged to the group.
type Record struct {
	// Prefix is the log statement's prefix: which rule logged the packet.
	Prefix string
	// Family is the netfilter family the packet was logged in: unix.NFPROTO_IPV4 or NFPROTO_IPV6 for
	// an inet table, NFPROTO_BRIDGE, ...
	Family uint8
	// HwProtocol is the packet's EtherType (0x0800 IPv4, 0x86dd IPv6).
	HwProtocol uint16
	// Hook is the netfilter hook the logging rule ran in (unix.NF_INET_FORWARD, ...).
	Hook uint8
	// InIfindex and OutIfindex are the interfaces the packet came in and would leave by, 0 when none
	// (no input device on the output hook, no output device on input).
	InIfindex, OutIfindex uint32
	// Mark is the packet's mark.
	Mark uint32
	// Seq numbers the group's records from 0; a gap means records were lost on the way.
	Seq uint32
	// Timestamp is the packet's receive time when the kernel stamped it, else when the record was read.
	Timestamp time.Time
	// Payload holds the packet's first bytes from the network header on, up to the copy range.
	Payload []byte
}

// Packet decodes the record's payload.
func (r Record) Packet() (Packet, error) {
	return DecodePacket(r.Payload)
}

// packetMsgType is the netlink message type of a logged packet.
const packetMsgType = netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | msgPacket)

// sizeofNfgenmsg is struct nfgenmsg {u8 family; u8 version; be16 res_id}, which starts every
// nfnetlink message.
const sizeofNfgenmsg = 4

var errNoPacketHeader = errors.New("no packet header attribute")

// parseRecord decodes a NFULNL_MSG_PACKET message; received stands in for a missing timestamp.
func parseRecord(m netlink.Message, received time.Time) (Record, error) {
	if len(m.Data) < sizeofNfgenmsg {
		return Record{}, fmt.Errorf("reading the nfgenmsg header: %d bytes", len(m.Data))
	}
	r := Record{Family: m.Data[0], Timestamp: received}
	ad, err := netlink.NewAttributeDecoder(m.Data[sizeofNfgenmsg:])
	if err != nil {
		return Record{}, fmt.Errorf("reading packet attributes: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var hasHeader bool
	for ad.Next() {
		switch ad.Type() {
		case attrPacketHdr:
			ad.Do(func(b []byte) error {
				if len(b) < 4 {
					return fmt.Errorf("packet header of %d bytes", len(b))
				}
				r.HwProtocol, r.Hook, hasHeader = binary.BigEndian.Uint16(b[0:2]), b[2], true
				return nil
			})
		case attrMark:
			r.Mark = ad.Uint32()
		case attrTimestamp:
			ad.Do(func(b []byte) error {
				if len(b) < 16 {
					return fmt.Errorf("timestamp of %d bytes", len(b))
				}
				sec, usec := binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])
				r.Timestamp = time.Unix(int64(sec), int64(usec)*int64(time.Microsecond))
				return nil
			})
		case attrIfindexIn:
			r.InIfindex = ad.Uint32()
		case attrIfindexOut:
			r.OutIfindex = ad.Uint32()
		case attrPayload:
			r.Payload = ad.Bytes()
		case attrPrefix:
			// The prefix is NUL-terminated; ad.String would keep anything after a stray NUL.
			b := ad.Bytes()
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			r.Prefix = string(b)
		case attrSeq:
			r.Seq = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return Record{}, fmt.Errorf("reading packet attributes: %w", err)
	}
	if !hasHeader {
		return Record{}, errNoPacketHeader
	}
	return r, nil
}
