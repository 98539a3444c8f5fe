package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// raiseMatch raises the match whose lowering starts es and returns how many expressions it took, or
// 0 when es does not start a match (the rule's statements follow). Each case inverts one case of
// lowerMatch; the comment above it is the nft syntax.
func raiseMatch(es []expr.Any, anon anonymousSets) (nft.Match, int, error) {
	switch e := es[0].(type) {
	case *expr.Ct:
		// ct state established,related
		return raiseCtState(es)
	case *expr.Meta:
		switch e.Key {
		case expr.MetaKeyNFPROTO:
			return raiseFamilyMatch(es, anon)
		case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
			return raiseIfnameMatch(es, anon)
		case expr.MetaKeyL4PROTO:
			// meta l4proto tcp, or meta l4proto { tcp, udp }
			protos, err := raiseBytes(es[1:], anon)
			if err != nil || protos == nil || e.Register != nftReg1 {
				return nil, 0, matchError("meta l4proto", orNotLowering(err))
			}
			return nft.L4Proto{Protos: protos}, 2, nil
		}
	case *expr.Payload:
		// th dport 80 / th dport 8000-8080 / th dport { 80, 8000-8080 } / th dport @NAME
		if e.Base == expr.PayloadBaseTransportHeader && e.Offset == dportOffset && e.Len == portLen && e.DestRegister == nftReg1 {
			m, err := raisePorts(es[1:], anon)
			return m, 2, matchError("th dport", err)
		}
	case *expr.Limit:
		// limit rate N/second
		rate, ok := raisePacketLimit(e)
		if !ok {
			return nil, 0, matchError("limit", errNotLowering)
		}
		return nft.RateLimit{Rate: rate}, 1, nil
	case *expr.Fib:
		// fib saddr type local
		cmp, ok := at[*expr.Cmp](es, 1)
		if e.FlagSADDR && e.ResultADDRTYPE && !e.FlagDADDR && !e.FlagIIF && !e.FlagOIF && e.Register == nftReg1 &&
			ok && cmp.Op == expr.CmpOpEq && bytes.Equal(cmp.Data, binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)) {
			return nft.SourceIsLocal{}, 2, nil
		}
		return nil, 0, fmt.Errorf("fib expression that is not `fib saddr type local`")
	}
	return nil, 0, nil
}

// matchError names the match whose expressions could not be raised; nil when err is nil.
func matchError(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("raising %s: %w", what, err)
}

var errNotLowering = errors.New("not the lowering of any match")

func orNotLowering(err error) error {
	if err != nil {
		return err
	}
	return errNotLowering
}

func raiseCtState(es []expr.Any) (nft.Match, int, error) {
	ct, _ := at[*expr.Ct](es, 0)
	mask, okMask := at[*expr.Bitwise](es, 1)
	cmp, okCmp := at[*expr.Cmp](es, 2)
	if ct.Key != expr.CtKeySTATE || !okMask || !okCmp || len(mask.Mask) != 4 ||
		cmp.Op != expr.CmpOpNeq || !bytes.Equal(cmp.Data, make([]byte, 4)) {
		return nil, 0, matchError("ct state", errNotLowering)
	}
	bits := binaryutil.NativeEndian.Uint32(mask.Mask)
	m := nft.CtState{Established: bits&expr.CtStateBitESTABLISHED != 0, Related: bits&expr.CtStateBitRELATED != 0}
	if bits&^(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED) != 0 || bits == 0 {
		return nil, 0, fmt.Errorf("ct state bits %#x: only established and related are ours", bits)
	}
	return m, 3, nil
}

// raiseFamilyMatch raises the matches that start with the family dependency `meta nfproto ipvX`:
// addresses in a named set, interface and address pairs, services and ICMPv6 types. A verdict map
// lookup starts the same way and is a statement: 0 then.
func raiseFamilyMatch(es []expr.Any, anon anonymousSets) (nft.Match, int, error) {
	family, n, ok := nfprotoOf(es)
	if !ok {
		return nil, 0, matchError("meta nfproto", errNotLowering)
	}
	var m nft.Match
	var took int
	var err error
	switch e := es[n].(type) {
	case *expr.Payload:
		m, took = raiseAddrMatch(es[n:], family, anon)
		if m == nil && took == 0 && isVMapLookup(es[n:]) {
			return nil, 0, nil // ip saddr vmap @NAME: a statement
		}
	case *expr.Meta:
		switch e.Key {
		case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
			// iifname . ip saddr [!=] @NAME, oifname . ip daddr [!=] @NAME
			output := e.Key == expr.MetaKeyOIFNAME
			field, ok := addrLoad(es, n+1, family, concatRegister(ifnameLen))
			set, okSet := namedLookup(es, n+2, anon)
			if e.Register == nftReg1 && ok && okSet && output == (field == nft.DestAddr) {
				m, took = nft.IfnameAddrInSet{Family: family, Output: output, Set: set.SetName, Negate: set.Invert}, 3
			}
		case expr.MetaKeyL4PROTO:
			m, took, err = raiseICMPv6Types(es[n:], family, anon)
		}
	}
	if err != nil || m == nil {
		return nil, 0, matchError(fmt.Sprintf("a match on ipv%d", family), orNotLowering(err))
	}
	return m, n + took, nil
}

// raiseAddrMatch raises what follows `meta nfproto ipvX` when an address is loaded first:
// `ip daddr . meta l4proto . th dport @NAME` and `ip saddr [!=] @NAME`.
func raiseAddrMatch(es []expr.Any, family nft.Family, anon anonymousSets) (nft.Match, int) {
	alen := addrLen(family)
	field, ok := addrLoad(es, 0, family, nftReg1)
	if !ok {
		return nil, 0
	}
	if proto, ok := at[*expr.Meta](es, 1); ok && field == nft.DestAddr {
		port, okPort := at[*expr.Payload](es, 2)
		set, okSet := namedLookup(es, 3, anon)
		if proto.Key != expr.MetaKeyL4PROTO || proto.Register != concatRegister(alen) || !okPort || !okSet ||
			port.Base != expr.PayloadBaseTransportHeader || port.Offset != dportOffset || port.Len != portLen ||
			port.DestRegister != concatRegister(alen+inetProtoPadded) || set.Invert {
			return nil, 0
		}
		return nft.ServiceInSet{Family: family, Set: set.SetName}, 4
	}
	if set, ok := namedLookup(es, 1, anon); ok {
		return nft.AddrInSet{Family: family, Field: field, Set: set.SetName, Negate: set.Invert}, 2
	}
	// update @NAME { ip saddr . ip daddr limit rate N/second }
	if dst, ok := addrLoad(es, 1, family, concatRegister(alen)); ok && field == nft.SourceAddr && dst == nft.DestAddr {
		if d, ok := at[*expr.Dynset](es, 2); ok {
			if rate, ok := raisePairLimit(d); ok {
				return nft.PairRateLimit{Family: family, Set: d.SetName, Rate: rate}, 3
			}
		}
	}
	return nil, 0
}

// raisePairLimit reads the dynset of a per-pair limit: an update of the key in register 1, with one
// packet limit and nothing else.
func raisePairLimit(d *expr.Dynset) (uint32, bool) {
	if d.SrcRegKey != nftReg1 || d.SrcRegData != 0 || d.Operation != uint32(unix.NFT_DYNSET_OP_UPDATE) || d.Timeout != 0 || d.Invert || len(d.Exprs) != 1 {
		return 0, false
	}
	l, ok := d.Exprs[0].(*expr.Limit)
	if !ok {
		return 0, false
	}
	return raisePacketLimit(l)
}

// raisePacketLimit inverts packetLimit.
func raisePacketLimit(l *expr.Limit) (uint32, bool) {
	if l.Type != expr.LimitTypePkts || l.Unit != expr.LimitTimeSecond || l.Burst != limitBurst || l.Over || l.Rate == 0 || l.Rate > 1<<32-1 {
		return 0, false
	}
	return uint32(l.Rate), true
}

func isVMapLookup(es []expr.Any) bool {
	l, ok := at[*expr.Lookup](es, 1)
	return ok && l.IsDestRegSet
}

// raiseICMPv6Types: `icmpv6 type { nd-neighbor-solicit, ... }`, after `meta nfproto ipv6`, with
// `meta l4proto ipv6-icmp`.
func raiseICMPv6Types(es []expr.Any, family nft.Family, anon anonymousSets) (nft.Match, int, error) {
	meta, _ := at[*expr.Meta](es, 0)
	cmp, okCmp := at[*expr.Cmp](es, 1)
	load, okLoad := at[*expr.Payload](es, 2)
	if family != nft.IPv6 || meta.Register != nftReg1 || !okCmp || cmp.Op != expr.CmpOpEq || !bytes.Equal(cmp.Data, []byte{nft.ProtoICMPv6}) ||
		!okLoad || load.Base != expr.PayloadBaseTransportHeader || load.Offset != icmpTypeOffset || load.Len != protoLen || load.DestRegister != nftReg1 {
		return nil, 0, nil
	}
	types, err := raiseBytes(es[3:], anon)
	if err != nil || types == nil {
		return nil, 0, matchError("icmpv6 type", orNotLowering(err))
	}
	return nft.ICMPv6TypeIn{Types: types}, 4, nil
}

// raiseIfnameMatch: `iifname [!=] @NAME`, `iifname "cali*"`, `oifname "cali*"`.
func raiseIfnameMatch(es []expr.Any, anon anonymousSets) (nft.Match, int, error) {
	meta, _ := at[*expr.Meta](es, 0)
	output := meta.Key == expr.MetaKeyOIFNAME
	if meta.Register != nftReg1 {
		return nil, 0, matchError("an interface name", errNotLowering)
	}
	if set, ok := namedLookup(es, 1, anon); ok && !output {
		return nft.IfnameInSet{Set: set.SetName, Negate: set.Invert}, 2, nil
	}
	// The prefix's bytes without the terminating zero: a zero would make it an exact name.
	if e, ok := at[*expr.Cmp](es, 1); ok && e.Op == expr.CmpOpEq && e.Register == nftReg1 &&
		len(e.Data) > 0 && len(e.Data) < ifnameLen && !bytes.Contains(e.Data, []byte{0}) {
		return nft.IfnamePrefix{Output: output, Prefix: string(e.Data)}, 2, nil
	}
	return nil, 0, matchError("an interface name", errNotLowering)
}

// raisePorts raises what follows the load of the destination port: `80`, `8000-8080`,
// `{ 80, 8000-8080 }` (an anonymous interval set) or `@NAME`.
func raisePorts(es []expr.Any, anon anonymousSets) (nft.Match, error) {
	if len(es) == 0 {
		return nil, errNotLowering
	}
	switch e := es[0].(type) {
	case *expr.Cmp:
		if e.Op != expr.CmpOpEq || e.Register != nftReg1 || len(e.Data) != portLen {
			return nil, errNotLowering
		}
		p := binary.BigEndian.Uint16(e.Data)
		return nft.DestPortIn{Ranges: []nft.PortRange{{First: p, Last: p}}}, nil
	case *expr.Range:
		if e.Op != expr.CmpOpEq || e.Register != nftReg1 || len(e.FromData) != portLen || len(e.ToData) != portLen {
			return nil, errNotLowering
		}
		return nft.DestPortIn{Ranges: []nft.PortRange{{First: binary.BigEndian.Uint16(e.FromData), Last: binary.BigEndian.Uint16(e.ToData)}}}, nil
	case *expr.Lookup:
		if e.IsDestRegSet || e.Invert || e.SourceRegister != nftReg1 {
			return nil, errNotLowering
		}
		set, ok := anon.sets[e.SetName]
		if !ok {
			return nft.DestPortInSet{Set: e.SetName}, nil
		}
		if !set.Interval || set.KeyType.GetNFTMagic() != nftables.TypeInetService.GetNFTMagic() {
			return nil, fmt.Errorf("anonymous set %s is not an interval set of ports", e.SetName)
		}
		elems, err := raiseIntervals(anon.elems[e.SetName], portLen)
		if err != nil {
			return nil, fmt.Errorf("anonymous set %s: %w", e.SetName, err)
		}
		var ranges []nft.PortRange
		for _, r := range elems {
			ranges = append(ranges, nft.PortRange{First: binary.BigEndian.Uint16(r.first), Last: binary.BigEndian.Uint16(r.last)})
		}
		return nft.DestPortIn{Ranges: ranges}, nil
	}
	return nil, errNotLowering
}

// raiseBytes raises a comparison of a one-byte value with a constant (`tcp`) or a lookup into an
// anonymous set of such constants (`{ tcp, udp }`), sorted. nil, nil when es starts neither.
func raiseBytes(es []expr.Any, anon anonymousSets) ([]uint8, error) {
	if len(es) == 0 {
		return nil, nil
	}
	switch e := es[0].(type) {
	case *expr.Cmp:
		if e.Op == expr.CmpOpEq && e.Register == nftReg1 && len(e.Data) == 1 {
			return []uint8{e.Data[0]}, nil
		}
	case *expr.Lookup:
		set, ok := anon.sets[e.SetName]
		if !ok || e.Invert || e.IsDestRegSet || e.SourceRegister != nftReg1 || set.Interval {
			return nil, fmt.Errorf("lookup into %s: want a constant anonymous set", e.SetName)
		}
		var out []uint8
		for _, el := range anon.elems[e.SetName] {
			if len(el.Key) != 1 || el.IntervalEnd {
				return nil, fmt.Errorf("anonymous set %s: element %x is not one byte", e.SetName, el.Key)
			}
			out = append(out, el.Key[0])
		}
		slices.Sort(out)
		if len(out) < 2 {
			return nil, fmt.Errorf("anonymous set %s: %d elements, the lowering writes sets of two or more", e.SetName, len(out))
		}
		return out, nil
	}
	return nil, nil
}

// nfprotoOf reads the family dependency `meta nfproto ipvX` at the head of es.
func nfprotoOf(es []expr.Any) (nft.Family, int, bool) {
	meta, ok := at[*expr.Meta](es, 0)
	cmp, okCmp := at[*expr.Cmp](es, 1)
	if !ok || !okCmp || meta.Key != expr.MetaKeyNFPROTO || meta.Register != nftReg1 || cmp.Op != expr.CmpOpEq || cmp.Register != nftReg1 || len(cmp.Data) != 1 {
		return 0, 0, false
	}
	switch cmp.Data[0] {
	case unix.NFPROTO_IPV4:
		return nft.IPv4, 2, true
	case unix.NFPROTO_IPV6:
		return nft.IPv6, 2, true
	}
	return 0, 0, false
}

// addrLoad reads the load of a source or destination address of family f into reg at es[i].
func addrLoad(es []expr.Any, i int, f nft.Family, reg uint32) (nft.Field, bool) {
	p, ok := at[*expr.Payload](es, i)
	if !ok || p.Base != expr.PayloadBaseNetworkHeader || p.Len != addrLen(f) || p.DestRegister != reg {
		return 0, false
	}
	for field, off := range addrOffsets[f] {
		if off == p.Offset {
			return field, true
		}
	}
	return 0, false
}

// namedLookup returns the lookup at es[i] if it is a plain lookup of register 1 in a named set.
func namedLookup(es []expr.Any, i int, anon anonymousSets) (*expr.Lookup, bool) {
	l, ok := at[*expr.Lookup](es, i)
	if !ok || l.IsDestRegSet || l.SourceRegister != nftReg1 {
		return nil, false
	}
	if _, isAnon := anon.sets[l.SetName]; isAnon {
		return nil, false
	}
	return l, true
}

// anonymousSets are the table's anonymous sets, which hold the constants of rules, by name.
type anonymousSets struct {
	sets  map[string]*nftables.Set
	elems map[string][]nftables.SetElement
}
