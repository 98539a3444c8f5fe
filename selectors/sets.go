package selectors

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
)

// memberSet is a set whose elements come from the member pods of peers. The Resolver counts a
// pod in when it joins a peer of the set and out when it leaves, and rebuilds the set's elements
// at the next Model.
type memberSet interface {
	// count adds (delta 1) or removes (delta -1) what a pod brings and reports whether an element
	// came or went.
	count(p *Pod, delta int) bool
	// bringsTheSame reports whether two versions of a pod bring the same elements.
	bringsTheSame(a, b *Pod) bool
	// rebuild computes the elements after counts changed and reports whether they differ from
	// the elements before. scratch is working memory that is never handed out.
	rebuild(scratch *[]AddrRange) bool
	common() *setBase
}

// setBase is what every set in use has besides its elements.
type setBase struct {
	id, description string
	peers           []*peerState // the selector peers its elements come from
	refs            int          // rules of active policies that refer to the set
}

func (b *setBase) common() *setBase { return b }

// addressSetState is an AddressSet in use: the addresses of the member pods of its selector peers,
// counted, and its ipBlocks' ranges.
type addressSetState struct {
	setBase
	blocks      []AddrRange // every ipBlock's ranges, normalized
	hasIPBlocks bool
	addrs       tally[netip.Addr]
	ranges      []AddrRange // the elements, as in the last Model
}

var _ memberSet = (*addressSetState)(nil)

func (s *addressSetState) count(p *Pod, delta int) bool {
	changed := false
	for _, ip := range p.IPs {
		changed = s.addrs.add(ip, delta) || changed
	}
	return changed
}

func (s *addressSetState) bringsTheSame(a, b *Pod) bool { return slices.Equal(a.IPs, b.IPs) }

func (s *addressSetState) rebuild(scratch *[]AddrRange) bool {
	merged := (*scratch)[:0]
	mergeRanges(s.addrs.entries, s.blocks, func(r AddrRange) { merged = append(merged, r) })
	*scratch = merged
	if slices.Equal(merged, s.ranges) {
		return false
	}
	s.ranges = slices.Clone(merged)
	if len(merged) == 0 {
		s.ranges = nil
	}
	return true
}

func (s *addressSetState) model() AddressSet {
	return AddressSet{ID: s.id, Description: s.description, Ranges: s.ranges, HasIPBlocks: s.hasIPBlocks}
}

// mergeRanges feeds addresses and blocks in order of their first address to a rangeMerger and
// emits the merged ranges.
func mergeRanges(addrs []tallyEntry[netip.Addr], blocks []AddrRange, emit func(AddrRange)) {
	var m rangeMerger
	for len(addrs) > 0 || len(blocks) > 0 {
		var next AddrRange
		if len(blocks) == 0 || (len(addrs) > 0 && addrs[0].item.Compare(blocks[0].From) <= 0) {
			next = AddrRange{From: addrs[0].item, To: addrs[0].item}
			addrs = addrs[1:]
		} else {
			next = blocks[0]
			blocks = blocks[1:]
		}
		if done, ok := m.push(next); ok {
			emit(done)
		}
	}
	if done, ok := m.flush(); ok {
		emit(done)
	}
}

// serviceSetState is a ServiceSet in use: what the member pods of its peers bring to its named
// port, counted.
type serviceSetState struct {
	setBase
	port     namedPort
	services tally[Service]
	elements []Service // as in the last Model
}

var _ memberSet = (*serviceSetState)(nil)

func (s *serviceSetState) count(p *Pod, delta int) bool {
	changed := false
	for _, number := range NamedPortNumbers(p, s.port.name, s.port.protocol) {
		for _, ip := range p.IPs {
			changed = s.services.add(Service{Addr: ip, Protocol: s.port.protocol, Port: number}, delta) || changed
		}
	}
	return changed
}

func (s *serviceSetState) bringsTheSame(a, b *Pod) bool {
	return slices.Equal(a.IPs, b.IPs) &&
		slices.Equal(NamedPortNumbers(a, s.port.name, s.port.protocol), NamedPortNumbers(b, s.port.name, s.port.protocol))
}

func (s *serviceSetState) rebuild(*[]AddrRange) bool {
	if slices.EqualFunc(s.services.entries, s.elements, func(e tallyEntry[Service], svc Service) bool { return e.item == svc }) {
		return false
	}
	s.elements = nil
	if n := len(s.services.entries); n > 0 {
		s.elements = make([]Service, 0, n)
	}
	for i := range s.services.entries {
		s.elements = append(s.elements, s.services.entries[i].item)
	}
	return true
}

func (s *serviceSetState) model() ServiceSet {
	return ServiceSet{ID: s.id, Description: s.description, Services: s.elements}
}

// The kinds of set, part of what a set's ID hashes.
const (
	addressSetKind = "addresses"
	serviceSetKind = "services"
)

// setID is a short, stable name for a set definition. It depends on the definition only, never on
// the members, so a pod coming or going changes a set's elements and not its name.
func setID(kind, definition string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + definition))
	return hex.EncodeToString(sum[:6])
}

// serviceDef defines a ServiceSet: one named port of an egress rule over the destination pods it
// may resolve on. Those are the pods the rule's selector peers select, or every eligible pod when
// the rule has an empty to or an ipBlock peer: the rule also matches the destination against its
// peers' AddressSet, so a wider scope never admits an address the peers do not.
type serviceDef struct {
	id, description string
	anyPod          bool
	peers           []peer
	port            namedPort
}

func newServiceDef(anyPeer bool, peers []peer, np namedPort) serviceDef {
	// "port represents the port on the given protocol. This can either be a numerical or named port
	// on a pod." When the destination is a pod, the name resolves on that pod however the peer
	// matched it, an ipBlock included (its pods are those with an address in the block); an address
	// that is no pod's has no named port.
	anyPod := anyPeer
	scope := "any pod"
	if !anyPod {
		scope = peersKey(peers)
	}
	def := "port " + string(np.protocol) + "/" + np.name + " of " + scope
	return serviceDef{id: setID(serviceSetKind, def), description: def, anyPod: anyPod, peers: peers, port: np}
}

// uniqueServiceDefs sorts definitions by ID and drops repeats (a rule naming a port twice), and
// returns the IDs too.
func uniqueServiceDefs(defs []serviceDef) ([]serviceDef, []string) {
	if len(defs) == 0 {
		return nil, nil
	}
	slices.SortFunc(defs, func(a, b serviceDef) int { return strings.Compare(a.id, b.id) })
	defs = slices.CompactFunc(defs, func(a, b serviceDef) bool { return a.id == b.id })
	ids := make([]string, len(defs))
	for i := range defs {
		ids[i] = defs[i].id
	}
	return defs, ids
}

// appendServices appends what one destination pod brings to a named port's set: each of its
// addresses with each number it declares for the name and protocol.
func appendServices(out []Service, pod *Pod, np namedPort) []Service {
	for _, number := range NamedPortNumbers(pod, np.name, np.protocol) {
		for _, ip := range pod.IPs {
			out = append(out, Service{Addr: ip, Protocol: np.protocol, Port: number})
		}
	}
	return out
}

// compareServices orders services by address, protocol, then port.
func compareServices(a, b Service) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Protocol), string(b.Protocol)); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}
