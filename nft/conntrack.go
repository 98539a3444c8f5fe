package nft

import (
	"net/netip"
)

// Our chains accept packets of tracked connections before any policy (`ct state established,related
// accept`), so a connection allowed once stays allowed for as long as conntrack remembers it: a
// policy that starts denying it would not end it, and a UDP socket that reuses an old source port
// would pass as "established". After each commit the agent therefore ends every tracked connection
// that the committed ruleset would not let start.

// Flow is a tracked connection as our forward hook sees its first packet: the original source, and
// the destination after any DNAT (the source of the reply direction).
type Flow struct {
	Src     netip.Addr
	Dst     netip.Addr
	Proto   uint8
	DstPort uint16
}

// ConntrackCleaner ends tracked connections that a committed ruleset no longer allows.
type ConntrackCleaner interface {
	// Cleanup deletes every tracked connection from a pod isolated for egress or to a pod isolated
	// for ingress that rs drops as a new connection, and returns how many it deleted. podIfaces are
	// the host interfaces of local pod addresses, as given to Compile.
	Cleanup(rs *Ruleset, podIfaces map[netip.Addr]string) (int, error)
}

// StaleFlows judges tracked connections against a ruleset, for a ConntrackCleaner. What it needs is
// built at the first flow: most cleanups find no flow at all.
type StaleFlows struct {
	rs        *Ruleset
	podIfaces map[netip.Addr]string
	tracer    *Tracer
	egress    map[netip.Addr]bool // local pods isolated for egress
	ingress   map[netip.Addr]bool // local pods isolated for ingress
}

// NewStaleFlows judges flows against rs; podIfaces are as given to Compile.
func NewStaleFlows(rs *Ruleset, podIfaces map[netip.Addr]string) *StaleFlows {
	return &StaleFlows{rs: rs, podIfaces: podIfaces}
}

func (s *StaleFlows) build() {
	s.tracer, s.egress, s.ingress = NewTracer(s.rs), map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, m := range s.rs.Maps {
		target := s.ingress
		if m.Name == mapEgressPodsV4 || m.Name == mapEgressPodsV6 {
			target = s.egress
		}
		for _, e := range m.Elements {
			target[e.Key] = true
		}
	}
}

// Denied reports whether the flow's first packet, sent now, would be dropped. Flows that touch no
// isolated local pod are never ours to end.
func (s *StaleFlows) Denied(f Flow) bool {
	if s.tracer == nil {
		s.build()
	}
	if !s.egress[f.Src] && !s.ingress[f.Dst] {
		return false
	}
	// The forward hook decides for traffic to the node too: the ingress chain only acts on local pod
	// destinations, and the egress chain is the same on both hooks.
	return s.tracer.Trace(ForwardPacket(f, s.podIfaces, "")).Verdict == Drop
}

// ForwardPacket is the first packet of the connection f as the forward hook of one node sees it, a new
// connection: podIfaces are the host interfaces of the node's local pod addresses, as given to
// Compile, and uplink the interface through which the node reaches other nodes and the world ("" when
// unknown). A pod-to-pod connection across nodes is judged twice: by its source's node for egress, and
// by its destination's node, where it arrives through the uplink, for ingress.
func ForwardPacket(f Flow, podIfaces map[netip.Addr]string, uplink string) Packet {
	p := Packet{Hook: HookForward, Iifname: podIfaces[f.Src], Oifname: podIfaces[f.Dst], Src: f.Src, Dst: f.Dst, Proto: f.Proto, DstPort: f.DstPort, Ct: CtNew}
	if p.Iifname == "" {
		p.Iifname = uplink
	}
	if p.Oifname == "" {
		p.Oifname = uplink
	}
	if f.Proto == ProtoICMPv6 {
		p.ICMPv6Type = icmpv6EchoRequest
	}
	return p
}

// icmpv6EchoRequest is what conntrack tracks for ICMPv6; neighbour discovery is never tracked.
const icmpv6EchoRequest = 128

// FakeConntrack is an in-memory conntrack table.
type FakeConntrack struct {
	Flows []Flow
}

var _ ConntrackCleaner = (*FakeConntrack)(nil)

// Cleanup deletes the flows rs denies.
func (f *FakeConntrack) Cleanup(rs *Ruleset, podIfaces map[netip.Addr]string) (int, error) {
	judge := NewStaleFlows(rs, podIfaces)
	kept := f.Flows[:0]
	deleted := 0
	for _, flow := range f.Flows {
		if judge.Denied(flow) {
			deleted++
			continue
		}
		kept = append(kept, flow)
	}
	f.Flows = kept
	return deleted, nil
}
