package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// CtStateValue is the conntrack state of a traced packet.
type CtStateValue uint8

const (
	CtNew CtStateValue = iota
	CtEstablished
	CtRelated
)

// Packet is what the tracer walks through a ruleset. Hook names the packet's way through the node,
// and the tracer runs the base chains of every hook on that way (see HookPath): HookForward is a
// routed packet, HookInput one delivered to the node, HookOutput one the node sends.
type Packet struct {
	Hook    Hook
	Iifname string // input interface; "" for locally generated packets
	Oifname string // output interface; "" for packets delivered to the node
	// SrcLocal says the source address is one of the node's own (`fib saddr type local`); the
	// tracer assumes it for HookOutput packets.
	SrcLocal   bool
	Src        netip.Addr
	Dst        netip.Addr
	Proto      uint8
	DstPort    uint16 // for TCP, UDP and SCTP
	ICMPv6Type uint8  // for ICMPv6
	Ct         CtStateValue
}

func (p Packet) String() string {
	return fmt.Sprintf("%s %s -> %s proto %s dport %d (iif %q oif %q)", p.Hook, p.Src, p.Dst, protoName(p.Proto), p.DstPort, p.Iifname, p.Oifname)
}

// TraceStep is one rule that matched on the packet's way.
type TraceStep struct {
	Chain string
	Index int    // position of the rule in its chain; -1 for a base chain's policy
	Rule  string // the rule in nft syntax
	// Counter is the counter object the rule updates ("" for none). Updating it does not change
	// the verdict.
	Counter string
}

// TraceResult is the final verdict and the rules that decided it.
type TraceResult struct {
	Verdict VerdictKind // Accept or Drop
	Steps   []TraceStep
}

// Trace evaluates a packet against the base chains of every hook on its way, hook after hook and
// within a hook in priority order, as the kernel does: a drop is final, an accept ends only that base
// chain.
func Trace(rs *Ruleset, p Packet) TraceResult {
	return NewTracer(rs).Trace(p)
}

// Tracer traces many packets through one ruleset, building each set's lookup table once. It is not
// safe for concurrent use.
type Tracer struct {
	rs     *Ruleset
	chains finder[Chain]
	sets   map[string]map[Element]bool
}

// NewTracer returns a tracer over rs, which must not change while the tracer is used.
func NewTracer(rs *Ruleset) *Tracer {
	return &Tracer{rs: rs, chains: indexChains(rs), sets: map[string]map[Element]bool{}}
}

// Trace evaluates one packet; see the function Trace.
func (tr *Tracer) Trace(p Packet) TraceResult {
	t := tracer{Tracer: tr, p: p}
	return TraceResult{Verdict: t.walk(), Steps: t.steps}
}

// Explain evaluates one packet as Trace does and returns its whole path: every rule evaluated, with
// every set and map lookup it made.
func (tr *Tracer) Explain(p Packet) TracePath {
	t := tracer{Tracer: tr, p: p, rec: &pathRecorder{}}
	v := t.walk()
	return TracePath{Verdict: RenderVerdict(Verdict{Kind: v}), Steps: t.rec.steps}
}

// walk runs the hooks on the packet's way and returns Accept or Drop.
func (t *tracer) walk() VerdictKind {
	if t.p.Hook == HookOutput {
		t.p.SrcLocal = true
	}
	for _, hook := range HookPath(t.p.Hook) {
		if v := t.runHook(hook); v == Drop {
			return Drop
		}
	}
	return Accept
}

// HookPath lists the hooks a packet crosses, in order, given the way it takes through the node
// (HookForward, HookInput or HookOutput).
func HookPath(way Hook) []Hook {
	switch way {
	case HookForward:
		return []Hook{HookPrerouting, HookForward, HookPostrouting}
	case HookInput:
		return []Hook{HookPrerouting, HookInput}
	case HookOutput:
		return []Hook{HookOutput, HookPostrouting}
	}
	return []Hook{way}
}

// runHook runs the base chains of one hook in priority order and returns Drop or VerdictNone.
func (t *tracer) runHook(hook Hook) VerdictKind {
	var bases []Chain
	for _, c := range t.rs.Chains {
		if c.Base != nil && c.Base.Hook == hook {
			bases = append(bases, c)
		}
	}
	slices.SortStableFunc(bases, func(a, b Chain) int { return cmp.Compare(a.Base.Priority, b.Base.Priority) })
	t.hook = hook
	for _, c := range bases {
		if v := t.run(c.Name, 0); v == Drop {
			return Drop
		}
	}
	return VerdictNone
}

// tracer is the state of one packet's walk.
type tracer struct {
	*Tracer
	p     Packet
	hook  Hook // the hook being run
	steps []TraceStep
	rec   *pathRecorder // nil unless explaining
}

// iifname and oifname are the interfaces the current hook knows: the kernel has no input interface
// on output and postrouting, and no output interface on prerouting and input, and reads an unknown
// interface's name as "".
func (t *tracer) iifname() string {
	if t.hook == HookOutput || t.hook == HookPostrouting {
		return ""
	}
	return t.p.Iifname
}

func (t *tracer) oifname() string {
	if t.hook == HookPrerouting || t.hook == HookInput {
		return ""
	}
	return t.p.Oifname
}

// run evaluates a chain and returns Accept, Drop, or VerdictNone when the packet fell off its end
// (or hit return).
func (t *tracer) run(chain string, depth int) VerdictKind {
	if depth > 16 {
		panic("nft: trace exceeded the jump depth limit in chain " + chain)
	}
	c, ok := t.chains.find(chain)
	if !ok {
		panic("nft: trace reached missing chain " + chain)
	}
	for i, r := range c.Rules {
		t.rec.begin(t.hook, chain, i, r)
		if failed := t.firstFailing(r.Matches); failed >= 0 {
			t.rec.end(false, renderMatch(r.Matches[failed]), Verdict{})
			continue
		}
		v := r.Verdict
		if r.VMap != nil {
			if FamilyOf(t.vmapKey(r.VMap)) != r.VMap.Family {
				// The implicit `meta nfproto` dependency fails: the rule does not match.
				t.rec.end(false, "meta nfproto "+familyName(r.VMap.Family), Verdict{})
				continue
			}
			found, ok := t.lookupMap(r.VMap)
			if !ok {
				t.rec.end(true, "", Verdict{})
				continue
			}
			v = found
		}
		t.rec.end(true, "", v)
		if v.Kind == VerdictNone {
			if r.Counter != "" || r.Log != nil {
				// A rule that counts or logs is on the packet's way even without a verdict.
				t.steps = append(t.steps, TraceStep{Chain: chain, Index: i, Rule: RenderRule(r), Counter: r.Counter})
			}
			continue
		}
		t.steps = append(t.steps, TraceStep{Chain: chain, Index: i, Rule: RenderRule(r), Counter: r.Counter})
		switch v.Kind {
		case Accept, Drop:
			return v.Kind
		case Return:
			return VerdictNone
		case Jump:
			if res := t.run(v.Chain, depth+1); res != VerdictNone {
				return res
			}
		case Goto:
			return t.run(v.Chain, depth+1)
		}
	}
	return VerdictNone
}

// vmapKey is the address a verdict map lookup reads.
func (t *tracer) vmapKey(l *VMapLookup) netip.Addr {
	if l.Field == DestAddr {
		return t.p.Dst
	}
	return t.p.Src
}

func (t *tracer) lookupMap(l *VMapLookup) (Verdict, bool) {
	addr := t.vmapKey(l)
	if FamilyOf(addr) != l.Family {
		return Verdict{}, false
	}
	for _, m := range t.rs.Maps {
		if m.Name != l.Map {
			continue
		}
		i, ok := slices.BinarySearchFunc(m.Elements, addr, func(e MapElement, a netip.Addr) int { return e.Key.Compare(a) })
		if ok {
			t.rec.mapLookup(l.Map, addr, true, m.Elements[i].Verdict)
			return m.Elements[i].Verdict, true
		}
	}
	t.rec.mapLookup(l.Map, addr, false, Verdict{})
	return Verdict{}, false
}

// firstFailing returns the index of the first match that fails, or -1 when all match.
func (t *tracer) firstFailing(ms []Match) int {
	for i, m := range ms {
		if !t.matches(m) {
			return i
		}
	}
	return -1
}

func (t *tracer) matches(m Match) bool {
	p := t.p
	switch m := m.(type) {
	case CtState:
		return (m.Established && p.Ct == CtEstablished) || (m.Related && p.Ct == CtRelated)
	case AddrInSet:
		addr := p.Src
		if m.Field == DestAddr {
			addr = p.Dst
		}
		if FamilyOf(addr) != m.Family {
			return false // the implicit `meta nfproto` dependency fails, whatever the negation
		}
		return t.inSet(m.Set, Element{Addr: addr}) != m.Negate
	case IfnameInSet:
		return t.inSet(m.Set, Element{Ifname: t.iifname()}) != m.Negate
	case IfnameAddrInSet:
		if FamilyOf(p.Src) != m.Family {
			return false
		}
		if m.Output {
			return t.inSet(m.Set, Element{Ifname: t.oifname(), Addr: p.Dst}) != m.Negate
		}
		return t.inSet(m.Set, Element{Ifname: t.iifname(), Addr: p.Src}) != m.Negate
	case IfnamePrefix:
		name := t.iifname()
		if m.Output {
			name = t.oifname()
		}
		return strings.HasPrefix(name, m.Prefix)
	case SourceIsLocal:
		return p.SrcLocal
	case L4Proto:
		return slices.Contains(m.Protos, p.Proto)
	case DestPortIn:
		if !hasPorts(p.Proto) {
			return false
		}
		return slices.ContainsFunc(m.Ranges, func(r PortRange) bool { return r.First <= p.DstPort && p.DstPort <= r.Last })
	case DestPortInSet:
		return hasPorts(p.Proto) && t.inSet(m.Set, Element{Port: p.DstPort})
	case ServiceInSet:
		if FamilyOf(p.Dst) != m.Family || !hasPorts(p.Proto) {
			return false
		}
		return t.inSet(m.Set, Element{Addr: p.Dst, Proto: p.Proto, Port: p.DstPort})
	case PairRateLimit:
		// A trace follows one packet: it is within every limit. The pair's family is implied.
		return FamilyOf(p.Src) == m.Family
	case RateLimit:
		return true
	case ICMPv6TypeIn:
		return p.Proto == ProtoICMPv6 && FamilyOf(p.Src) == IPv6 && slices.Contains(m.Types, p.ICMPv6Type)
	default:
		panic(fmt.Sprintf("nft: unknown match %T", m))
	}
}

// inSet looks an element up in a named set; in interval sets an address or a port matches the range
// holding it.
func (t *tracer) inSet(name string, key Element) bool {
	for _, s := range t.rs.Sets {
		if s.Name != name {
			continue
		}
		found := t.setHas(s, key)
		t.rec.setLookup(s, key, found)
		return found
	}
	panic("nft: trace looked up missing set " + name)
}

// setHas looks key up in s.
func (t *tracer) setHas(s Set, key Element) bool {
	if s.Type == KeyPort {
		return slices.ContainsFunc(s.Elements, func(e Element) bool { return e.Port <= key.Port && key.Port <= e.PortEnd })
	}
	if s.Interval {
		return slices.ContainsFunc(s.Elements, func(e Element) bool {
			return e.Addr.BitLen() == key.Addr.BitLen() && e.Addr.Compare(key.Addr) <= 0 && key.Addr.Compare(e.AddrEnd) <= 0
		})
	}
	members, ok := t.sets[s.Name]
	if !ok {
		members = make(map[Element]bool, len(s.Elements))
		for _, e := range s.Elements {
			members[e] = true
		}
		t.sets[s.Name] = members
	}
	return members[key]
}
