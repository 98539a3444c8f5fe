package nft

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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

// staleFlows judges flows against a ruleset. What it needs is built at the first flow: most cleanups
// find no flow at all.
type staleFlows struct {
	rs        *Ruleset
	podIfaces map[netip.Addr]string
	tracer    *Tracer
	egress    map[netip.Addr]bool // local pods isolated for egress
	ingress   map[netip.Addr]bool // local pods isolated for ingress
}

func newStaleFlows(rs *Ruleset, podIfaces map[netip.Addr]string) *staleFlows {
	return &staleFlows{rs: rs, podIfaces: podIfaces}
}

func (s *staleFlows) build() {
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

// denied reports whether the flow's first packet, sent now, would be dropped. Flows that touch no
// isolated local pod are never ours to end.
func (s *staleFlows) denied(f Flow) bool {
	if s.tracer == nil {
		s.build()
	}
	if !s.egress[f.Src] && !s.ingress[f.Dst] {
		return false
	}
	p := Packet{Hook: HookForward, Iifname: s.podIfaces[f.Src], Src: f.Src, Dst: f.Dst, Proto: f.Proto, DstPort: f.DstPort, Ct: CtNew}
	if f.Proto == ProtoICMPv6 {
		p.ICMPv6Type = icmpv6EchoRequest
	}
	// The forward hook decides for traffic to the node too: the ingress chain only acts on local pod
	// destinations, and the egress chain is the same on both hooks.
	return s.tracer.Trace(p).Verdict == Drop
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
	judge := newStaleFlows(rs, podIfaces)
	kept := f.Flows[:0]
	deleted := 0
	for _, flow := range f.Flows {
		if judge.denied(flow) {
			deleted++
			continue
		}
		kept = append(kept, flow)
	}
	f.Flows = kept
	return deleted, nil
}

// NetlinkConntrack cleans the conntrack table of one network namespace.
type NetlinkConntrack struct {
	handle *netlink.Handle
}

var _ ConntrackCleaner = (*NetlinkConntrack)(nil)

// NewNetlinkConntrack opens the conntrack table of the namespace at netnsPath ("" = the current one).
func NewNetlinkConntrack(netnsPath string) (*NetlinkConntrack, error) {
	ns := netns.None()
	if netnsPath != "" {
		var err error
		if ns, err = netns.GetFromPath(netnsPath); err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening the conntrack table: %w", err)
	}
	return &NetlinkConntrack{handle: h}, nil
}

// Close releases the netlink handle.
func (c *NetlinkConntrack) Close() {
	c.handle.Close()
}

// Cleanup dumps the table of each family and deletes the flows rs denies.
func (c *NetlinkConntrack) Cleanup(rs *Ruleset, podIfaces map[netip.Addr]string) (int, error) {
	filter := conntrackFilter{judge: newStaleFlows(rs, podIfaces)}
	var total uint
	var errs []error
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		n, err := c.handle.ConntrackDeleteFilters(netlink.ConntrackTable, family, filter)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting denied connections of family %d: %w", family, err))
		}
	}
	return int(total), errors.Join(errs...)
}

// conntrackFilter adapts the judgement to netlink's filter interface.
type conntrackFilter struct {
	judge *staleFlows
}

func (f conntrackFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	src, ok1 := netip.AddrFromSlice(flow.Forward.SrcIP)
	dst, ok2 := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	return f.judge.denied(Flow{Src: src.Unmap(), Dst: dst.Unmap(), Proto: flow.Forward.Protocol, DstPort: flow.Reverse.SrcPort})
}
