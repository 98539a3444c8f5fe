package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The expressions below are the ones nft itself generates for the same syntax (compare
// `nft --debug=netlink`), including the implicit protocol dependencies, so that `nft list table`
// prints our rules back exactly as Render writes them.

// Registers. nft loads a single value into the 16-byte register 1; the parts of a concatenation go
// into consecutive 4-byte registers, each part padded to a multiple of 4 bytes.
const (
	nftReg1    = unix.NFT_REG_1
	nftReg32At = unix.NFT_REG32_00
)

// concatRegister returns the register for a concatenation part that starts `offset` bytes into the
// key: a whole 16-byte register when aligned to one, else the 4-byte register (as nft chooses).
func concatRegister(offset uint32) uint32 {
	if offset%16 == 0 {
		return nftReg1 + offset/16
	}
	return nftReg32At + offset/4
}

// Header offsets of the fields we read.
var addrOffsets = map[nft.Family]map[nft.Field]uint32{
	nft.IPv4: {nft.SourceAddr: 12, nft.DestAddr: 16},
	nft.IPv6: {nft.SourceAddr: 8, nft.DestAddr: 24},
}

const (
	dportOffset     = 2 // transport header: destination port of TCP, UDP and SCTP
	icmpTypeOffset  = 0 // transport header: ICMPv6 type
	portLen         = 2
	protoLen        = 1
	inetProtoPadded = 4
)

// addRule: `add rule inet T CHAIN MATCHES... [VERDICT] [comment "..."]`.
func (l *lowering) addRule(chain string, r nft.Rule) error {
	var exprs []expr.Any
	for _, m := range r.Matches {
		es, err := l.lowerMatch(m)
		if err != nil {
			return fmt.Errorf("rule in chain %s: %w", chain, err)
		}
		exprs = append(exprs, es...)
	}
	if v := r.VMap; v != nil {
		// ip saddr vmap @NAME
		es, err := loadAddr(v.Family, v.Field, nftReg1)
		if err != nil {
			return fmt.Errorf("rule in chain %s: %w", chain, err)
		}
		ref := l.setRef(v.Map, true)
		exprs = append(exprs, es...)
		exprs = append(exprs, &expr.Lookup{SourceRegister: nftReg1, IsDestRegSet: true, DestRegister: 0, SetName: ref.Name, SetID: ref.ID})
	}
	if r.Log != nil {
		// log prefix "PREFIX" group G
		if len(r.Log.Prefix) > nft.MaxLogPrefixLen {
			return fmt.Errorf("rule in chain %s: log prefix %q is longer than %d bytes", chain, r.Log.Prefix, nft.MaxLogPrefixLen)
		}
		exprs = append(exprs, &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: r.Log.Group, Data: []byte(r.Log.Prefix)})
	}
	if r.Counter != "" {
		// counter name "NAME"
		exprs = append(exprs, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: r.Counter})
	}
	if r.Verdict.Kind != nft.VerdictNone {
		v, err := lowerVerdict(r.Verdict)
		if err != nil {
			return fmt.Errorf("rule in chain %s: %w", chain, err)
		}
		exprs = append(exprs, v)
	}
	rule := &nftables.Rule{Table: l.table, Chain: l.chainRef(chain), Exprs: exprs}
	if r.Comment != "" {
		rule.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
	}
	l.conn.AddRule(rule)
	return nil
}

func (l *lowering) lowerMatch(m nft.Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case nft.CtState:
		// ct state established,related
		var bits uint32
		if m.Established {
			bits |= expr.CtStateBitESTABLISHED
		}
		if m.Related {
			bits |= expr.CtStateBitRELATED
		}
		if bits == 0 {
			return nil, fmt.Errorf("ct state match without states")
		}
		return []expr.Any{
			&expr.Ct{Register: nftReg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: nftReg1, DestRegister: nftReg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: nftReg1, Data: make([]byte, 4)},
		}, nil

	case nft.AddrInSet:
		// ip saddr [!=] @NAME; nft adds `meta nfproto ipv4` because the table is inet.
		es, err := loadAddr(m.Family, m.Field, nftReg1)
		if err != nil {
			return nil, err
		}
		return append(es, l.lookup(m.Set, m.Negate)), nil

	case nft.IfnameInSet, nft.IfnameAddrInSet, nft.IfnamePrefix:
		return l.lowerIfnameMatch(m)

	case nft.L4Proto:
		// meta l4proto tcp, or meta l4proto { tcp, udp }
		load := &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: nftReg1}
		switch len(m.Protos) {
		case 0:
			return nil, fmt.Errorf("l4proto match without protocols")
		case 1:
			return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: []byte{m.Protos[0]}}}, nil
		}
		keys := make([][]byte, len(m.Protos))
		for i, p := range m.Protos {
			keys[i] = []byte{p}
		}
		lookup, err := l.anonymousSet(nftables.TypeInetProto, false, singletons(keys))
		if err != nil {
			return nil, err
		}
		return []expr.Any{load, lookup}, nil

	case nft.DestPortIn:
		// th dport 80 / th dport 8000-8080 / th dport { 80, 8000-8080 }. Preceded by
		// `meta l4proto tcp`, nft lists the pair as `tcp dport ...`.
		return l.lowerPorts(m.Ranges)

	case nft.DestPortInSet:
		// th dport @NAME; preceded by `meta l4proto tcp`, nft lists the pair as `tcp dport @NAME`.
		load := &expr.Payload{DestRegister: nftReg1, Base: expr.PayloadBaseTransportHeader, Offset: dportOffset, Len: portLen}
		return []expr.Any{load, l.lookup(m.Set, false)}, nil

	case nft.ServiceInSet:
		// ip daddr . meta l4proto . th dport @NAME
		es := nfprotoIs(m.Family)
		if es == nil {
			return nil, fmt.Errorf("unknown family %d", m.Family)
		}
		alen := addrLen(m.Family)
		addr, err := loadAddrOnly(m.Family, nft.DestAddr, nftReg1)
		if err != nil {
			return nil, err
		}
		es = append(es, addr,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: concatRegister(alen)},
			&expr.Payload{DestRegister: concatRegister(alen + inetProtoPadded), Base: expr.PayloadBaseTransportHeader,
				Offset: dportOffset, Len: portLen},
			l.lookup(m.Set, false))
		return es, nil

	case nft.ICMPv6TypeIn:
		// icmpv6 type { nd-neighbor-solicit, ... }: nft adds `meta nfproto ipv6` and
		// `meta l4proto ipv6-icmp`.
		es := append(nfprotoIs(nft.IPv6),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: nftReg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: []byte{nft.ProtoICMPv6}},
			&expr.Payload{DestRegister: nftReg1, Base: expr.PayloadBaseTransportHeader, Offset: icmpTypeOffset, Len: protoLen})
		switch len(m.Types) {
		case 0:
			return nil, fmt.Errorf("icmpv6 type match without types")
		case 1:
			return append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: []byte{m.Types[0]}}), nil
		}
		keys := make([][]byte, len(m.Types))
		for i, t := range m.Types {
			keys[i] = []byte{t}
		}
		lookup, err := l.anonymousSet(nftables.TypeICMP6Type, false, singletons(keys))
		if err != nil {
			return nil, err
		}
		return append(es, lookup), nil

	case nft.SourceIsLocal:
		// fib saddr type local: the route type of the source address, compared as a host-order
		// uint32 with RTN_LOCAL.
		return []expr.Any{
			&expr.Fib{Register: nftReg1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		}, nil

	case nft.PairRateLimit, nft.RateLimit:
		return l.lowerLimit(m)

	default:
		return nil, fmt.Errorf("unknown match %T", m)
	}
}

// limitBurst is the burst nft gives a `limit rate N/second` that names none.
const limitBurst = 5

// packetLimit is `limit rate N/second` as nft sends it.
func packetLimit(rate uint32) *expr.Limit {
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Unit: expr.LimitTimeSecond, Burst: limitBurst}
}

// lowerLimit lowers the rate limits.
func (l *lowering) lowerLimit(m nft.Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case nft.PairRateLimit:
		// update @NAME { ip saddr . ip daddr limit rate N/second }: the source address fills the
		// key's first part, the destination follows it; the dynset keeps one limit per element.
		if m.Rate == 0 {
			return nil, fmt.Errorf("per-pair limit of set %s without a rate", m.Set)
		}
		es, err := loadAddr(m.Family, nft.SourceAddr, nftReg1)
		if err != nil {
			return nil, err
		}
		dst, err := loadAddrOnly(m.Family, nft.DestAddr, concatRegister(addrLen(m.Family)))
		if err != nil {
			return nil, err
		}
		ref := l.setRef(m.Set, false)
		return append(es, dst, &expr.Dynset{SrcRegKey: nftReg1, SetName: ref.Name, SetID: ref.ID,
			Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Exprs: []expr.Any{packetLimit(m.Rate)}}), nil

	case nft.RateLimit:
		// limit rate N/second
		if m.Rate == 0 {
			return nil, fmt.Errorf("limit without a rate")
		}
		return []expr.Any{packetLimit(m.Rate)}, nil

	default:
		return nil, fmt.Errorf("unknown match %T", m)
	}
}

// lowerIfnameMatch lowers the matches on interface names.
func (l *lowering) lowerIfnameMatch(m nft.Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case nft.IfnameInSet:
		// iifname [!=] @NAME
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: nftReg1},
			l.lookup(m.Set, m.Negate),
		}, nil

	case nft.IfnameAddrInSet:
		// iifname . ip saddr [!=] @NAME (or oifname . ip daddr): the name fills register 1 (16 bytes),
		// the address follows it.
		es := nfprotoIs(m.Family)
		if es == nil {
			return nil, fmt.Errorf("unknown family %d", m.Family)
		}
		ifname, field := expr.MetaKeyIIFNAME, nft.SourceAddr
		if m.Output {
			ifname, field = expr.MetaKeyOIFNAME, nft.DestAddr
		}
		es = append(es, &expr.Meta{Key: ifname, Register: nftReg1})
		addr, err := loadAddrOnly(m.Family, field, concatRegister(ifnameLen))
		if err != nil {
			return nil, err
		}
		return append(append(es, addr), l.lookup(m.Set, m.Negate)), nil

	case nft.IfnamePrefix:
		// iifname "cali*": nft compares only the prefix's bytes, without the name's terminating zero.
		if m.Prefix == "" || len(m.Prefix) >= ifnameLen {
			return nil, fmt.Errorf("interface name prefix %q: want 1 to %d bytes", m.Prefix, ifnameLen-1)
		}
		key := expr.MetaKeyIIFNAME
		if m.Output {
			key = expr.MetaKeyOIFNAME
		}
		return []expr.Any{
			&expr.Meta{Key: key, Register: nftReg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: []byte(m.Prefix)},
		}, nil

	default:
		return nil, fmt.Errorf("unknown match %T", m)
	}
}

// lowerPorts compares the destination port with one port, one range, or an anonymous interval set.
func (l *lowering) lowerPorts(ranges []nft.PortRange) ([]expr.Any, error) {
	load := &expr.Payload{DestRegister: nftReg1, Base: expr.PayloadBaseTransportHeader, Offset: dportOffset, Len: portLen}
	port := func(p uint16) []byte { return binaryutil.BigEndian.PutUint16(p) }
	switch {
	case len(ranges) == 0:
		return nil, fmt.Errorf("port match without ports")
	case len(ranges) == 1 && ranges[0].First == ranges[0].Last:
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: port(ranges[0].First)}}, nil
	case len(ranges) == 1:
		return []expr.Any{load, &expr.Range{Op: expr.CmpOpEq, Register: nftReg1,
			FromData: port(ranges[0].First), ToData: port(ranges[0].Last)}}, nil
	}
	var elems []nftables.SetElement
	for _, r := range ranges {
		if r.Last < r.First {
			return nil, fmt.Errorf("port range %d-%d ends before it starts", r.First, r.Last)
		}
		elems = append(elems, nftables.SetElement{Key: port(r.First)})
		if r.Last < 0xffff {
			elems = append(elems, nftables.SetElement{Key: port(r.Last + 1), IntervalEnd: true})
		}
	}
	lookup, err := l.anonymousSet(nftables.TypeInetService, true, elems)
	if err != nil {
		return nil, err
	}
	return []expr.Any{load, lookup}, nil
}

// anonymousSet queues a constant anonymous set, which lives as long as the rule that follows it in
// the batch, and returns the lookup into it.
func (l *lowering) anonymousSet(kt nftables.SetDatatype, interval bool, elems []nftables.SetElement) (expr.Any, error) {
	set := &nftables.Set{
		Table:     l.table,
		ID:        l.allocID(),
		Name:      l.anonymous.name(),
		Anonymous: true,
		Constant:  true,
		Interval:  interval,
		KeyType:   kt,
	}
	if err := l.conn.AddSet(set, elems); err != nil {
		return nil, fmt.Errorf("adding anonymous set: %w", err)
	}
	return &expr.Lookup{SourceRegister: nftReg1, SetName: set.Name, SetID: set.ID}, nil
}

// anonymousSetNames names the anonymous sets of rules. nft sends "__set%d" and lets the kernel pick
// the number, but then the kernel reads the name of every set of the table (with sscanf) to find a
// free number, and the rule, which cannot know the name, finds its set by batch ID, walking every
// operation queued before it. Both walks grow with the table and are paid for each anonymous set, of
// which a full replacement of a large cluster has hundreds. A name
// without "%d" is taken as it is, as long as no set of the table has it yet, and a rule finds its set
// by that name.
//
// Our names are "__set_" + a random stem + "_" + a counter: a backend never reuses one, another
// backend (another process) has another stem, and the numbers nft picks ("__set0") cannot collide with
// them. They never show: nft lists anonymous sets inline.
type anonymousSetNames struct {
	stem string
	last uint64
}

func newAnonymousSetNames() *anonymousSetNames {
	return &anonymousSetNames{stem: fmt.Sprintf("__set_%08x_", rand.Uint32())}
}

func (n *anonymousSetNames) name() string {
	n.last++
	return n.stem + strconv.FormatUint(n.last, 36)
}

func singletons(keys [][]byte) []nftables.SetElement {
	out := make([]nftables.SetElement, len(keys))
	for i, k := range keys {
		out[i] = nftables.SetElement{Key: k}
	}
	return out
}

// lookup matches register 1, where every key is loaded, against the named set (`@NAME`, or
// `!= @NAME` when inverted).
func (l *lowering) lookup(name string, invert bool) *expr.Lookup {
	ref := l.setRef(name, false)
	return &expr.Lookup{SourceRegister: nftReg1, SetName: ref.Name, SetID: ref.ID, Invert: invert}
}

// nfprotoIs is the dependency nft adds in an inet table before reading an IPv4 or IPv6 header:
// `meta nfproto ipv4`.
func nfprotoIs(f nft.Family) []expr.Any {
	var proto byte
	switch f {
	case nft.IPv4:
		proto = unix.NFPROTO_IPV4
	case nft.IPv6:
		proto = unix.NFPROTO_IPV6
	default:
		return nil
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: nftReg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: nftReg1, Data: []byte{proto}},
	}
}

// loadAddr loads a source or destination address into reg, after the family check.
func loadAddr(f nft.Family, field nft.Field, reg uint32) ([]expr.Any, error) {
	es := nfprotoIs(f)
	if es == nil {
		return nil, fmt.Errorf("unknown family %d", f)
	}
	load, err := loadAddrOnly(f, field, reg)
	if err != nil {
		return nil, err
	}
	return append(es, load), nil
}

func loadAddrOnly(f nft.Family, field nft.Field, reg uint32) (expr.Any, error) {
	off, ok := addrOffsets[f][field]
	if !ok {
		return nil, fmt.Errorf("cannot read field %d of family %d", field, f)
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: addrLen(f)}, nil
}

func addrLen(f nft.Family) uint32 {
	if f == nft.IPv6 {
		return 16
	}
	return 4
}

func lowerVerdict(v nft.Verdict) (*expr.Verdict, error) {
	switch v.Kind {
	case nft.Accept:
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case nft.Drop:
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case nft.Return:
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	case nft.Jump, nft.Goto:
		if v.Chain == "" {
			return nil, fmt.Errorf("%s without a chain", nft.RenderVerdict(v))
		}
		kind := expr.VerdictJump
		if v.Kind == nft.Goto {
			kind = expr.VerdictGoto
		}
		return &expr.Verdict{Kind: kind, Chain: v.Chain}, nil
	default:
		return nil, fmt.Errorf("unknown verdict kind %d", v.Kind)
	}
}
