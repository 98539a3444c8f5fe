package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Render writes the ruleset as `nft list table` prints it, so that goldens, logs and the kernel's own
// listing can be compared line by line.
func Render(rs *Ruleset) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", rs.Table)
	first := true
	section := func() {
		if !first {
			b.WriteByte('\n')
		}
		first = false
	}
	for _, c := range rs.Counters {
		section()
		// nft lists a counter's values inside the braces, which `nft -s` leaves out: the values are
		// the kernel's, not the ruleset's.
		fmt.Fprintf(&b, "\tcounter %s {\n\t}\n", c.Name)
	}
	for _, s := range rs.Sets {
		section()
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.Name, s.Type)
		if s.Size > 0 {
			fmt.Fprintf(&b, "\t\tsize %d\n", s.Size)
		}
		if s.Interval {
			b.WriteString("\t\tflags interval\n")
		}
		if s.Dynamic {
			fmt.Fprintf(&b, "\t\tflags dynamic,timeout\n\t\ttimeout %s\n", renderTimeout(s.Timeout))
		}
		if s.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %s\n", strconv.Quote(s.Comment))
		}
		if len(s.Elements) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", renderElements(s.Type, s.Interval, s.Elements))
		}
		b.WriteString("\t}\n")
	}
	for _, m := range rs.Maps {
		section()
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : verdict\n", m.Name, m.Type)
		if m.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %s\n", strconv.Quote(m.Comment))
		}
		if len(m.Elements) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", renderMapElements(m.Elements))
		}
		b.WriteString("\t}\n")
	}
	for _, c := range rs.Chains {
		section()
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Base != nil {
			fmt.Fprintf(&b, "\t\t%s\n", baseChainSpec(c.Base))
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", RenderRule(r))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func baseChainSpec(h *BaseHook) string {
	return fmt.Sprintf("type filter hook %s priority %s; policy accept;", h.Hook, renderPriority(h.Hook, h.Priority))
}

// standardPriorities are nft's names of priorities in an inet table, with the hooks each is valid
// for (nil: every hook).
var standardPriorities = []struct {
	name  string
	value int32
	hooks []Hook
}{
	{"raw", -300, nil},
	{"mangle", -150, nil},
	{"dstnat", -100, []Hook{HookPrerouting}},
	{"filter", 0, nil},
	{"security", 50, nil},
	{"srcnat", 100, []Hook{HookPostrouting}},
}

// renderPriority writes a priority as nft lists it: the first standard name valid for the hook
// within 10 of the value, with the offset, or else the number.
func renderPriority(hook Hook, prio int32) string {
	for _, std := range standardPriorities {
		if std.hooks != nil && !slices.Contains(std.hooks, hook) {
			continue
		}
		switch offset := prio - std.value; {
		case offset == 0:
			return std.name
		case offset > 0 && offset <= 10:
			return fmt.Sprintf("%s + %d", std.name, offset)
		case offset < 0 && offset >= -10:
			return fmt.Sprintf("%s - %d", std.name, -offset)
		}
	}
	return strconv.Itoa(int(prio))
}

func setHeaderInline(s Set) string {
	out := "type " + string(s.Type) + "; "
	if s.Size > 0 {
		out += fmt.Sprintf("size %d; ", s.Size)
	}
	if s.Interval {
		out += "flags interval; "
	}
	if s.Dynamic {
		out += "flags dynamic,timeout; timeout " + renderTimeout(s.Timeout) + "; "
	}
	if s.Comment != "" {
		out += "comment " + strconv.Quote(s.Comment) + "; "
	}
	return out
}

// RenderRule writes one rule in nft syntax.
func RenderRule(r Rule) string {
	var parts []string
	for i := 0; i < len(r.Matches); i++ {
		m := r.Matches[i]
		// nft prints `meta l4proto tcp th dport 80` as `tcp dport 80`.
		if p, ok := m.(L4Proto); ok && len(p.Protos) == 1 && hasPorts(p.Protos[0]) && i+1 < len(r.Matches) {
			switch d := r.Matches[i+1].(type) {
			case DestPortIn:
				parts = append(parts, protoName(p.Protos[0])+" dport "+renderPorts(d.Ranges))
				i++
				continue
			case DestPortInSet:
				parts = append(parts, protoName(p.Protos[0])+" dport @"+d.Set)
				i++
				continue
			}
		}
		parts = append(parts, renderMatch(m))
	}
	if r.VMap != nil {
		parts = append(parts, fmt.Sprintf("%s %s vmap @%s", ipKeyword(r.VMap.Family), fieldName(r.VMap.Field), r.VMap.Map))
	}
	if r.Log != nil {
		parts = append(parts, fmt.Sprintf("log prefix %s group %d", strconv.Quote(r.Log.Prefix), r.Log.Group))
	}
	if r.Counter != "" {
		parts = append(parts, "counter name "+strconv.Quote(r.Counter))
	}
	if v := RenderVerdict(r.Verdict); v != "" {
		parts = append(parts, v)
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(parts, " ")
}

func renderMatch(m Match) string {
	switch m := m.(type) {
	case CtState:
		var states []string
		if m.Established {
			states = append(states, "established")
		}
		if m.Related {
			states = append(states, "related")
		}
		return "ct state " + strings.Join(states, ",")
	case AddrInSet:
		return fmt.Sprintf("%s %s %s@%s", ipKeyword(m.Family), fieldName(m.Field), negation(m.Negate), m.Set)
	case IfnameInSet:
		return fmt.Sprintf("iifname %s@%s", negation(m.Negate), m.Set)
	case IfnameAddrInSet:
		if m.Output {
			return fmt.Sprintf("oifname . %s daddr %s@%s", ipKeyword(m.Family), negation(m.Negate), m.Set)
		}
		return fmt.Sprintf("iifname . %s saddr %s@%s", ipKeyword(m.Family), negation(m.Negate), m.Set)
	case IfnamePrefix:
		if m.Output {
			return fmt.Sprintf("oifname %q", m.Prefix+"*")
		}
		return fmt.Sprintf("iifname %q", m.Prefix+"*")
	case L4Proto:
		names := make([]string, len(m.Protos))
		for i, p := range m.Protos {
			names[i] = protoName(p)
		}
		return "meta l4proto " + braced(names)
	case DestPortIn:
		return "th dport " + renderPorts(m.Ranges)
	case DestPortInSet:
		return "th dport @" + m.Set
	case ServiceInSet:
		return fmt.Sprintf("%s daddr . meta l4proto . th dport @%s", ipKeyword(m.Family), m.Set)
	case SourceIsLocal:
		return "fib saddr type local"
	case PairRateLimit:
		ip := ipKeyword(m.Family)
		return fmt.Sprintf("update @%s { %s saddr . %s daddr limit rate %d/second }", m.Set, ip, ip, m.Rate)
	case RateLimit:
		return fmt.Sprintf("limit rate %d/second", m.Rate)
	case ICMPv6TypeIn:
		names := make([]string, len(m.Types))
		for i, t := range m.Types {
			names[i] = icmpv6TypeName(t)
		}
		return "icmpv6 type " + braced(names)
	default:
		panic(fmt.Sprintf("nft: unknown match %T", m))
	}
}

// RenderVerdict renders a verdict as nft writes it.
func RenderVerdict(v Verdict) string {
	switch v.Kind {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Jump:
		return "jump " + v.Chain
	case Goto:
		return "goto " + v.Chain
	case Return:
		return "return"
	default:
		return ""
	}
}

// renderTimeout writes a set's timeout as nft lists it: 1m, 90s, 1h30m.
func renderTimeout(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

func renderPorts(ranges []PortRange) string {
	items := make([]string, len(ranges))
	for i, r := range ranges {
		items[i] = renderPortRange(r)
	}
	return braced(items)
}

// renderPortRange writes one port, or a range as first-last.
func renderPortRange(r PortRange) string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// braced writes one item bare and several as an anonymous set.
func braced(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

func negation(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

func ipKeyword(f Family) string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

func fieldName(f Field) string {
	switch f {
	case SourceAddr:
		return "saddr"
	case DestAddr:
		return "daddr"
	default:
		return "iifname"
	}
}

func hasPorts(proto uint8) bool {
	return proto == ProtoTCP || proto == ProtoUDP || proto == ProtoSCTP
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoSCTP:
		return "sctp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "ipv6-icmp"
	default:
		return strconv.Itoa(int(p))
	}
}

func icmpv6TypeName(t uint8) string {
	switch t {
	case ICMPv6RouterSolicit:
		return "nd-router-solicit"
	case ICMPv6RouterAdvert:
		return "nd-router-advert"
	case ICMPv6NeighborSolicit:
		return "nd-neighbor-solicit"
	case ICMPv6NeighborAdvert:
		return "nd-neighbor-advert"
	case ICMPv6Redirect:
		return "nd-redirect"
	default:
		return strconv.Itoa(int(t))
	}
}

func renderElements(t KeyType, interval bool, elems []Element) string {
	items := make([]string, len(elems))
	for i, e := range elems {
		items[i] = renderElement(t, interval, e)
	}
	return strings.Join(items, ", ")
}

func renderElement(t KeyType, interval bool, e Element) string {
	switch t {
	case KeyIPv4, KeyIPv6:
		if interval {
			return renderAddrRange(e.Addr, e.AddrEnd)
		}
		return e.Addr.String()
	case KeyIfname:
		return strconv.Quote(e.Ifname)
	case KeyIfnameIPv4, KeyIfnameIPv6:
		return strconv.Quote(e.Ifname) + " . " + e.Addr.String()
	case KeyIPv4ProtoPort, KeyIPv6ProtoPort:
		return fmt.Sprintf("%s . %s . %d", e.Addr, protoName(e.Proto), e.Port)
	case KeyPort:
		return renderPortRange(PortRange{First: e.Port, Last: e.PortEnd})
	default:
		panic(fmt.Sprintf("nft: unknown key type %q", t))
	}
}

// renderAddrRange prints a range as nft does: one address, a prefix when the range is exactly one,
// otherwise first-last.
func renderAddrRange(from, to netip.Addr) string {
	if from == to {
		return from.String()
	}
	if p, ok := rangeAsPrefix(from, to); ok {
		return p.String()
	}
	return from.String() + "-" + to.String()
}

// rangeAsPrefix returns the prefix covering exactly [from, to], if there is one.
func rangeAsPrefix(from, to netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= from.BitLen(); bits++ {
		p := netip.PrefixFrom(from, bits)
		if p.Masked().Addr() != from {
			continue
		}
		if lastAddr(p) == to {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// lastAddr returns the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func renderMapElements(elems []MapElement) string {
	items := make([]string, len(elems))
	for i, e := range elems {
		items[i] = e.Key.String() + " : " + RenderVerdict(e.Verdict)
	}
	return strings.Join(items, ", ")
}
