package selectors

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

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
	// matched it, an ipBlock included; an address that is no pod's has no named port.
	anyPod := anyPeer || slices.ContainsFunc(peers, func(p peer) bool { return p.isIPBlock })
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
	for _, number := range namedPortNumbers(pod, np.name, np.protocol) {
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
