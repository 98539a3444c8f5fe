package selectors

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// setID is a short, stable name for a set definition. It depends on the definition only, never on
// the members, so a pod coming or going changes a set's elements and not its name.
func setID(kind, definition string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + definition))
	return hex.EncodeToString(sum[:6])
}

// addressSet returns the ID of the set holding every address of a peer list, building the set the
// first time its definition is seen.
func (r *resolver) addressSet(peers []peer) string {
	def := peersKey(peers)
	id := setID("addresses", def)
	if _, ok := r.addressSets[id]; ok {
		return id
	}
	size, hasIPBlocks := 0, false
	for i := range peers {
		hasIPBlocks = hasIPBlocks || peers[i].isIPBlock
		if peers[i].isIPBlock {
			size += len(peers[i].ipRanges)
		} else {
			size += 2 * len(r.podsOf(&peers[i])) // most pods have one or two addresses
		}
	}
	ranges := make([]AddrRange, 0, size)
	for i := range peers {
		p := &peers[i]
		if p.isIPBlock {
			ranges = append(ranges, p.ipRanges...)
			continue
		}
		for _, pod := range r.podsOf(p) {
			for _, ip := range pod.IPs {
				ranges = append(ranges, AddrRange{From: ip, To: ip})
			}
		}
	}
	r.addressSets[id] = &AddressSet{ID: id, Description: def, Ranges: normalizeRanges(ranges), HasIPBlocks: hasIPBlocks}
	return id
}

// serviceSet returns the ID of the set holding (address, protocol, port) of every destination pod
// that defines the named port, over the pods the peers select (every eligible pod when anyPeer).
// ipBlock peers contribute nothing: a named port belongs to a pod, an address range has none.
func (r *resolver) serviceSet(anyPeer bool, peers []peer, np namedPort) string {
	scope := "any pod"
	if !anyPeer {
		scope = peersKey(peers)
	}
	def := "port " + string(np.protocol) + "/" + np.name + " of " + scope
	id := setID("services", def)
	if _, ok := r.serviceSets[id]; ok {
		return id
	}
	var pods []*Pod
	if anyPeer {
		pods = r.idx.allPods
	} else {
		for i := range peers {
			if !peers[i].isIPBlock {
				pods = append(pods, r.podsOf(&peers[i])...)
			}
		}
	}
	services := make([]Service, 0, 2*len(pods))
	for _, pod := range pods {
		for _, number := range namedPortNumbers(pod, np.name, np.protocol) {
			for _, ip := range pod.IPs {
				services = append(services, Service{Addr: ip, Protocol: np.protocol, Port: number})
			}
		}
	}
	r.serviceSets[id] = &ServiceSet{ID: id, Description: def, Services: normalizeServices(services)}
	return id
}

// normalizeServices sorts and deduplicates (a pod selected by two peers appears once).
func normalizeServices(ss []Service) []Service {
	slices.SortFunc(ss, func(a, b Service) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Protocol), string(b.Protocol)); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
