// Package nft owns nftpolicy's one nftables table as data: a typed model of it, the pure compiler
// from a resolved selectors.Model, rendering to nft text, diffs between two rulesets, the applier over
// a Backend, a packet tracer and an in-memory fake. Nothing here talks to the kernel: package
// nft/kernel lowers transactions to netlink and holds the kernel's Backend, conntrack cleaner and
// interface resolver.
//
// The rule language is deliberately small: a closed set of Match kinds that the renderer, the lowering,
// the diff and the packet tracer all understand. Rules are static; what changes with pods and
// policies lives in set and map elements wherever it can.
package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Family is an IP family.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// FamilyOf returns the family of addr.
func FamilyOf(addr netip.Addr) Family {
	if addr.Is4() {
		return IPv4
	}
	return IPv6
}

// Ruleset is the whole content of our inet table.
type Ruleset struct {
	Table    string
	Counters []Counter // sorted by name
	Sets     []Set     // sorted by name
	Maps     []Map     // sorted by name
	Chains   []Chain   // base chains first in declaration order, then regular chains sorted by name
}

// KeyType is the type of a set's or map's keys, written as nft writes it.
type KeyType string

const (
	KeyIPv4          KeyType = "ipv4_addr"
	KeyIPv6          KeyType = "ipv6_addr"
	KeyIfname        KeyType = "ifname"
	KeyIfnameIPv4    KeyType = "ifname . ipv4_addr"
	KeyIfnameIPv6    KeyType = "ifname . ipv6_addr"
	KeyIPv4ProtoPort KeyType = "ipv4_addr . inet_proto . inet_service"
	KeyIPv6ProtoPort KeyType = "ipv6_addr . inet_proto . inet_service"
	KeyPort          KeyType = "inet_service"
	// Address pairs, keys of the drop log's per-pair limits (see DropLog).
	KeyIPv4Pair KeyType = "ipv4_addr . ipv4_addr"
	KeyIPv6Pair KeyType = "ipv6_addr . ipv6_addr"
)

// Set is a named set.
type Set struct {
	Name     string
	Type     KeyType
	Interval bool // elements are address or port ranges (flags interval)
	// Size is the most elements the kernel lets the set hold (nft's `size`); 0 is no limit. A size
	// lets the kernel allocate a hash set's buckets once, at creation, instead of growing them while
	// a large batch fills the set. Compile sizes hash peer and service sets with room to grow.
	Size uint32
	// Dynamic sets are filled by the rules' `update @set { ... }` statements, not by the ruleset:
	// flags dynamic,timeout, elements expiring after Timeout (whole seconds). They hold no Elements.
	Dynamic  bool
	Timeout  time.Duration
	Comment  string
	Elements []Element // sorted, see SortElements
}

// Element is one set element. Which fields are used depends on the set's KeyType:
//   - ipv4_addr/ipv6_addr: Addr, and AddrEnd (== Addr for one address) in interval sets;
//   - ifname: Ifname; ifname . ipvX_addr: Ifname and Addr;
//   - ipvX_addr . inet_proto . inet_service: Addr, Proto and Port;
//   - inet_service (always an interval set): Port, and PortEnd (== Port for one port).
//
// Element is comparable, so diffs use it as a map key.
type Element struct {
	Ifname  string
	Addr    netip.Addr
	AddrEnd netip.Addr
	Proto   uint8
	Port    uint16
	PortEnd uint16
}

// Map is a named verdict map keyed by one address.
type Map struct {
	Name     string
	Type     KeyType // KeyIPv4 or KeyIPv6
	Comment  string
	Elements []MapElement // sorted by key
}

// MapElement maps one address to a verdict.
type MapElement struct {
	Key     netip.Addr
	Verdict Verdict
}

// VerdictKind is what a rule does when it matches.
type VerdictKind uint8

const (
	VerdictNone VerdictKind = iota // no verdict: a rule that only dispatches through a verdict map
	Accept
	Drop
	Jump
	Goto
	Return
)

// Verdict is a rule's verdict; Chain is set for Jump and Goto.
type Verdict struct {
	Kind  VerdictKind
	Chain string
}

// Hook is a netfilter hook a base chain attaches to.
type Hook string

const (
	HookPrerouting  Hook = "prerouting"
	HookInput       Hook = "input"
	HookForward     Hook = "forward"
	HookOutput      Hook = "output"
	HookPostrouting Hook = "postrouting"
)

// BaseHook makes a chain a base chain: type filter, the given hook and priority, policy accept.
type BaseHook struct {
	Hook     Hook
	Priority int32 // relative to the filter priority (0)
}

// Chain is a base chain (Base != nil) or a regular chain. Chains carry no comment: google/nftables
// cannot set a chain's user data, and the rules of a policy chain and the drop of a pod chain name
// their policies anyway.
type Chain struct {
	Name  string
	Base  *BaseHook
	Rules []Rule
}

// Rule matches when all of its Matches match; then it updates its Counter, if any, and applies
// Verdict, or, when VMap is set, looks the packet up in a verdict map.
type Rule struct {
	Matches []Match
	VMap    *VMapLookup
	// Counter names a counter object of the table (see Counter) that the rule updates before its
	// verdict: `counter name "NAME"`. "" for none.
	Counter string
	// Log, when set, sends the packets the rule matches to an NFLOG group before the counter and
	// verdict: `log prefix "PREFIX" group G`.
	Log     *Log
	Verdict Verdict
	Comment string
	// Handle is the rule's handle in the kernel when the rule was read back from it (see
	// kernel.NetlinkBackend.ReadRuleset), else 0. It is not part of the rule: Diff and comparisons
	// ignore it.
	Handle uint64
}

// Log is a rule's log statement: the packet goes to NFLOG group Group, tagged with Prefix (at most
// MaxLogPrefixLen bytes), and the rule goes on.
type Log struct {
	Group  uint16
	Prefix string
}

// MaxLogPrefixLen is the longest log prefix the kernel takes (NF_LOG_PREFIXLEN less its NUL).
const MaxLogPrefixLen = 127

// Field is a packet field a match or lookup reads.
type Field uint8

const (
	SourceAddr Field = iota + 1
	DestAddr
	InputIfname
)

// VMapLookup dispatches on a packet address: `ip saddr vmap @name`.
type VMapLookup struct {
	Family Family
	Field  Field // SourceAddr or DestAddr
	Map    string
}

// Match is one condition of a rule. The set of kinds is closed: Render, lowering, Trace and tests
// switch over exactly the types below.
type Match interface{ isMatch() }

// CtState matches conntrack states: `ct state established,related`.
type CtState struct {
	Established bool
	Related     bool
}

// AddrInSet matches an address against a named set: `ip saddr @set` (or `!=` when Negate).
type AddrInSet struct {
	Family Family
	Field  Field // SourceAddr or DestAddr
	Set    string
	Negate bool
}

// IfnameInSet matches the input interface name against a named set: `iifname @set`.
type IfnameInSet struct {
	Set    string
	Negate bool
}

// IfnameAddrInSet matches the input interface and the source address together:
// `iifname . ip saddr @set` (or `!=` when Negate); with Output, the output interface and the
// destination address: `oifname . ip daddr @set`.
type IfnameAddrInSet struct {
	Family Family
	Output bool
	Set    string
	Negate bool
}

// IfnamePrefix matches the input interface's name against a prefix: `iifname "cali*"`; with Output,
// the output interface's: `oifname "cali*"`. The prefix is a valid interface name (see
// ValidIfnamePrefix).
type IfnamePrefix struct {
	Output bool
	Prefix string
}

// L4Proto matches the transport protocol: `meta l4proto tcp` or `meta l4proto { tcp, udp }`.
type L4Proto struct {
	Protos []uint8 // IANA protocol numbers, sorted
}

// DestPortIn matches the transport destination port against constant ranges: `th dport 80`,
// `th dport 8000-8080` or `th dport { 80, 8000-8080 }` (an anonymous set). It is always preceded by an
// L4Proto match naming one protocol with ports (TCP, UDP or SCTP). The compiler writes one port or
// one range this way, and several as DestPortInSet.
type DestPortIn struct {
	Ranges []PortRange // sorted, disjoint
}

// DestPortInSet matches the transport destination port against a named interval set of ports:
// `th dport @set`. Like DestPortIn it is always preceded by an L4Proto match naming one protocol
// with ports.
type DestPortInSet struct {
	Set string
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	First uint16
	Last  uint16
}

// ServiceInSet matches destination address, protocol and destination port together against a named set:
// `ip daddr . meta l4proto . th dport @set`.
type ServiceInSet struct {
	Family Family
	Set    string
}

// SourceIsLocal matches packets whose source address is one of the node's own: `fib saddr type local`.
// It tells the node's own traffic apart on the postrouting hook, which has no input interface.
type SourceIsLocal struct{}

// PairRateLimit adds or refreshes the packet's source and destination address pair in a dynamic set
// whose elements each carry a rate limit, and matches while that pair is within its limit:
// `update @set { ip saddr . ip daddr limit rate N/second }`. Like every IPv4 or IPv6 match it
// implies the packet's family.
type PairRateLimit struct {
	Family Family
	Set    string
	Rate   uint32 // packets per second, with nft's default burst
}

// RateLimit matches while the rule's packets stay within a rate: `limit rate N/second`. Each rule
// holds its own limit.
type RateLimit struct {
	Rate uint32 // packets per second, with nft's default burst
}

// ICMPv6TypeIn matches ICMPv6 types: `icmpv6 type { nd-neighbor-solicit, ... }`.
type ICMPv6TypeIn struct {
	Types []uint8 // sorted
}

func (CtState) isMatch()         {}
func (AddrInSet) isMatch()       {}
func (IfnameInSet) isMatch()     {}
func (IfnameAddrInSet) isMatch() {}
func (IfnamePrefix) isMatch()    {}
func (L4Proto) isMatch()         {}
func (DestPortIn) isMatch()      {}
func (DestPortInSet) isMatch()   {}
func (ServiceInSet) isMatch()    {}
func (ICMPv6TypeIn) isMatch()    {}
func (SourceIsLocal) isMatch()   {}
func (PairRateLimit) isMatch()   {}
func (RateLimit) isMatch()       {}

// IANA protocol numbers used by the compiler.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// ICMPv6 neighbour discovery types (RFC 4861).
const (
	ICMPv6RouterSolicit   uint8 = 133
	ICMPv6RouterAdvert    uint8 = 134
	ICMPv6NeighborSolicit uint8 = 135
	ICMPv6NeighborAdvert  uint8 = 136
	ICMPv6Redirect        uint8 = 137
)

// rulesEqual reports whether two rule lists are the same, without reflection: Diff calls it for
// every chain whose rules were lowered again, and reflect.DeepEqual allocates on every call.
func rulesEqual(a, b []Rule) bool {
	return slices.EqualFunc(a, b, ruleEqual)
}

func ruleEqual(a, b Rule) bool {
	if a.Verdict != b.Verdict || a.Comment != b.Comment || a.Counter != b.Counter || (a.VMap == nil) != (b.VMap == nil) || a.VMap != nil && *a.VMap != *b.VMap {
		return false
	}
	if (a.Log == nil) != (b.Log == nil) || a.Log != nil && *a.Log != *b.Log {
		return false
	}
	return slices.EqualFunc(a.Matches, b.Matches, matchEqual)
}

// matchEqual compares two matches of any kind; kinds with slices compare their contents.
func matchEqual(a, b Match) bool {
	switch x := a.(type) {
	case L4Proto:
		y, ok := b.(L4Proto)
		return ok && slices.Equal(x.Protos, y.Protos)
	case DestPortIn:
		y, ok := b.(DestPortIn)
		return ok && slices.Equal(x.Ranges, y.Ranges)
	case ICMPv6TypeIn:
		y, ok := b.(ICMPv6TypeIn)
		return ok && slices.Equal(x.Types, y.Types)
	case CtState, AddrInSet, IfnameInSet, IfnameAddrInSet, IfnamePrefix, ServiceInSet, DestPortInSet, SourceIsLocal,
		PairRateLimit, RateLimit:
		return a == b // comparable kinds: equal types and fields
	default:
		panic(fmt.Sprintf("nft: unknown match %T", a))
	}
}

// baseEqual compares two base chain specs (nil: a regular chain).
func baseEqual(a, b *BaseHook) bool {
	return a == b || a != nil && b != nil && *a == *b
}
