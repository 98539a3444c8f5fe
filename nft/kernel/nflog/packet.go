package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IANA protocol numbers that DecodePacket reads further than the IP header.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// TCP header flags, as in Packet.TCPFlags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
)

// ErrTruncated is returned (wrapped) when the copied bytes end before a header DecodePacket reads.
var ErrTruncated = errors.New("packet truncated")

// Packet is what names a connection, read from the first bytes of a logged packet.
type Packet struct {
	Src, Dst netip.Addr
	// Proto is the transport protocol: IPv4's protocol field, or the header after IPv6's extension
	// headers.
	Proto uint8
	// SrcPort and DstPort are set for TCP, UDP, UDP-Lite and SCTP.
	SrcPort, DstPort uint16
	// TCPFlags holds the flags byte of a TCP header (TCPSyn, TCPAck, ...).
	TCPFlags uint8
	// ICMPType and ICMPCode are set for ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
	// Fragment is true for a fragment other than the first: it has no transport header.
	Fragment bool
}

// DecodePacket reads an IPv4 or IPv6 packet that starts at its network header, as NFLOG copies it.
// When the bytes end early it returns ErrTruncated with the fields read so far; it never reads past
// b.
func DecodePacket(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, fmt.Errorf("reading the IP version: %w", ErrTruncated)
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b)
	case 6:
		return decodeIPv6(b)
	default:
		return Packet{}, fmt.Errorf("decoding a packet of IP version %d: not IPv4 or IPv6", b[0]>>4)
	}
}

func decodeIPv4(b []byte) (Packet, error) {
	if len(b) < 20 {
		return Packet{}, fmt.Errorf("reading the IPv4 header: %w", ErrTruncated)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return Packet{}, fmt.Errorf("decoding an IPv4 header length of %d bytes: too short", ihl)
	}
	p := Packet{
		Src:   netip.AddrFrom4([4]byte(b[12:16])),
		Dst:   netip.AddrFrom4([4]byte(b[16:20])),
		Proto: b[9],
	}
	// The fragment offset: the low 13 bits of bytes 6-7, in units of 8 bytes.
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		p.Fragment = true
		return p, nil
	}
	if len(b) < ihl {
		return p, fmt.Errorf("reading IPv4 options: %w", ErrTruncated)
	}
	return p, decodeTransport(&p, b[ihl:], ProtoICMP)
}

// IPv6 extension headers that DecodePacket steps over (RFC 8200 section 4, RFC 4302).
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AuthHdr  = 51
	ipv6DestOpts = 60
)

func decodeIPv6(b []byte) (Packet, error) {
	if len(b) < 40 {
		return Packet{}, fmt.Errorf("reading the IPv6 header: %w", ErrTruncated)
	}
	p := Packet{
		Src:   netip.AddrFrom16([16]byte(b[8:24])),
		Dst:   netip.AddrFrom16([16]byte(b[24:40])),
		Proto: b[6],
	}
	rest := b[40:]
	for {
		var size int
		switch p.Proto {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(rest) < 2 {
				return p, fmt.Errorf("reading IPv6 extension header %d: %w", p.Proto, ErrTruncated)
			}
			size = (int(rest[1]) + 1) * 8 // length in 8-byte units, not counting the first 8
		case ipv6AuthHdr:
			if len(rest) < 2 {
				return p, fmt.Errorf("reading the IPv6 authentication header: %w", ErrTruncated)
			}
			size = (int(rest[1]) + 2) * 4 // length in 4-byte units, minus 2
		case ipv6Fragment:
			if len(rest) < 8 {
				return p, fmt.Errorf("reading the IPv6 fragment header: %w", ErrTruncated)
			}
			if binary.BigEndian.Uint16(rest[2:4])>>3 != 0 {
				p.Proto, p.Fragment = rest[0], true
				return p, nil
			}
			size = 8
		default:
			return p, decodeTransport(&p, rest, ProtoICMPv6)
		}
		if len(rest) < size {
			return p, fmt.Errorf("reading IPv6 extension header %d: %w", p.Proto, ErrTruncated)
		}
		p.Proto, rest = rest[0], rest[size:]
	}
}

// decodeTransport reads ports, TCP flags or the ICMP type from the transport header; icmp is the
// ICMP of the packet's IP version (ICMP for IPv4, ICMPv6 for IPv6).
func decodeTransport(p *Packet, b []byte, icmp uint8) error {
	switch p.Proto {
	case ProtoTCP:
		if len(b) < 14 {
			return fmt.Errorf("reading the TCP header: %w", ErrTruncated)
		}
		p.TCPFlags = b[13]
	case ProtoUDP, ProtoUDPLite, ProtoSCTP:
		if len(b) < 4 {
			return fmt.Errorf("reading the ports of protocol %d: %w", p.Proto, ErrTruncated)
		}
	case icmp:
		if len(b) < 2 {
			return fmt.Errorf("reading the ICMP header: %w", ErrTruncated)
		}
		p.ICMPType, p.ICMPCode = b[0], b[1]
		return nil
	default:
		return nil
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	return nil
}
