package nflog

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fromHex reads a fixture written as hex with spaces and '|' between fields.
func fromHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Fixtures: 10.0.0.1 and fd00::1 send to 10.0.0.2 and fd00::2.
const (
	ipv4TCPSyn = "45 00 003c | 1c46 4000 | 40 06 0000 | 0a000001 | 0a000002" + // IPv4, 20 bytes, TCP
		"| 9c40 0050 | 00000001 | 00000000 | a0 02 faf0 | 0000 0000" // 40000 -> 80, data offset 40, SYN
	ipv4TCPSynWithOptions = "46 00 0040 | 1c46 4000 | 40 06 0000 | 0a000001 | 0a000002 | 01010100" + // IHL 6, NOP NOP NOP EOL
		"| 9c40 0050 | 00000001 | 00000000 | 50 12 faf0 | 0000 0000" // SYN+ACK
	ipv4UDPLater = "45 00 0030 | 1c46 00b9 | 40 11 0000 | 0a000001 | 0a000002 | 0000000000000000" // offset 185*8
	ipv4ICMPEcho = "45 00 0054 | 0000 4000 | 40 01 0000 | 0a000001 | 0a000002 | 08 00 0000 0001 0001"
	ipv4SCTP     = "45 00 0030 | 0000 4000 | 40 84 0000 | 0a000001 | 0a000002 | 1388 0bb8 | 00000000 00000000"
	ipv6Addrs    = "fd000000000000000000000000000001 | fd000000000000000000000000000002"
	ipv6UDP      = "60000000 | 000c 11 40 |" + ipv6Addrs + "| 14e9 0035 000c 0000 | 70696e67" // 5353 -> 53
	ipv6ICMPEcho = "60000000 | 0008 3a 40 |" + ipv6Addrs + "| 80 00 0000 0001 0001"           // echo request
	// Hop-by-hop options (8 bytes, next: destination options), destination options (16 bytes,
	// next: TCP), then TCP 443 -> 8080 with SYN.
	ipv6ExtTCP = "60000000 | 002c 00 40 |" + ipv6Addrs +
		"| 3c 00 010400000000 | 06 01 010c 00000000 0000000000000000" +
		"| 01bb 1f90 | 00000001 | 00000000 | 50 02 faf0 | 0000 0000"
	ipv6LaterFragment = "60000000 | 0010 2c 40 |" + ipv6Addrs + "| 11 00 0009 12345678 | 0000000000000000" // offset 1
)

var (
	v4Src, v4Dst = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6Src, v6Dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

func TestDecodePacket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture string
		want    Packet
	}{
		{"IPv4 TCP SYN", ipv4TCPSyn, Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoTCP, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{"IPv4 options then TCP SYN+ACK", ipv4TCPSynWithOptions, Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoTCP, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn | TCPAck}},
		{"IPv4 non-first fragment", ipv4UDPLater, Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoUDP, Fragment: true}},
		{"IPv4 ICMP echo", ipv4ICMPEcho, Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoICMP, ICMPType: 8}},
		{"IPv4 SCTP", ipv4SCTP, Packet{Src: v4Src, Dst: v4Dst, Proto: ProtoSCTP, SrcPort: 5000, DstPort: 3000}},
		{"IPv6 UDP", ipv6UDP, Packet{Src: v6Src, Dst: v6Dst, Proto: ProtoUDP, SrcPort: 5353, DstPort: 53}},
		{"IPv6 ICMPv6 echo", ipv6ICMPEcho, Packet{Src: v6Src, Dst: v6Dst, Proto: ProtoICMPv6, ICMPType: 128}},
		{"IPv6 extension headers then TCP", ipv6ExtTCP, Packet{Src: v6Src, Dst: v6Dst, Proto: ProtoTCP, SrcPort: 443, DstPort: 8080, TCPFlags: TCPSyn}},
		{"IPv6 non-first fragment", ipv6LaterFragment, Packet{Src: v6Src, Dst: v6Dst, Proto: ProtoUDP, Fragment: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePacket(fromHex(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecodeTruncated cuts each fixture at every length short of the headers it needs: each cut is
// an ErrTruncated, never a panic or a wrong port.
func TestDecodeTruncated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture string
		needs   int // bytes up to the last field read
	}{
		{"IPv4 TCP", ipv4TCPSyn, 20 + 14},
		{"IPv4 options then TCP", ipv4TCPSynWithOptions, 24 + 14},
		{"IPv4 ICMP", ipv4ICMPEcho, 20 + 2},
		{"IPv6 UDP", ipv6UDP, 40 + 4},
		{"IPv6 ICMPv6", ipv6ICMPEcho, 40 + 2},
		{"IPv6 extension headers then TCP", ipv6ExtTCP, 40 + 24 + 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fromHex(t, tc.fixture)
			for n := 0; n < tc.needs; n++ {
				p, err := DecodePacket(b[:n:n])
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("%d bytes: got %+v, %v; want ErrTruncated", n, p, err)
				}
				if p.SrcPort != 0 || p.DstPort != 0 || p.TCPFlags != 0 {
					t.Fatalf("%d bytes: transport fields set from a cut header: %+v", n, p)
				}
			}
			if _, err := DecodePacket(b[:tc.needs]); err != nil {
				t.Fatalf("%d bytes: %v", tc.needs, err)
			}
		})
	}
}

func TestDecodeRejectsOtherVersions(t *testing.T) {
	for _, fixture := range []string{
		"00",                                  // version 0
		"45 00 003c | 0000 0000 | 40 06 0000", // cut IPv4 header
		"44 00 0014 | 0000 0000 | 40 06 0000 | 0a000001 | 0a000002", // IHL 4: 16 bytes
	} {
		if p, err := DecodePacket(fromHex(t, fixture)); err == nil {
			t.Errorf("%s: got %+v, want an error", fixture, p)
		}
	}
}
