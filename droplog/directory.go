package droplog

import (
	"net/netip"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Directory names what a record refers to: the pod and policies behind each drop point of the
// committed ruleset, and the pod holding an address. It is built from one Model and never modified.
type Directory struct {
	points map[string]podPoint   // by pod chain name
	pods   map[netip.Addr]PodRef // every known pod address
	rules  *nft.Ruleset          // the committed ruleset, whose counters name the policy rules; may be nil
	peers  PeerFinder            // the addresses pods does not hold; may be nil
}

// PeerFinder finds the pod of the cluster holding an address, for a peer on another node.
type PeerFinder func(netip.Addr) (PodRef, bool)

// podPoint is one isolated direction of a local pod.
type podPoint struct {
	pod       PodRef
	dir       selectors.Direction
	isolating []string // every policy isolating the pod in dir, "namespace/name", sorted
	audited   []string // every audited policy selecting the pod for dir, likewise
}

// PodRef names a pod.
type PodRef struct {
	Namespace string
	Name      string
}

// NewDirectory indexes the isolated directions of m's local pods by their chains, the addresses of
// m's local pods and of pods (other pods of the cluster, for naming peers; may be nil), and the
// policy rules of rs, the ruleset committed from m, by their counters (rs may be nil).
func NewDirectory(m *selectors.Model, rs *nft.Ruleset, pods []selectors.Pod) *Directory {
	d := &Directory{points: map[string]podPoint{}, pods: map[netip.Addr]PodRef{}, rules: rs}
	for _, p := range pods {
		if p.HostNetwork {
			continue // its addresses are the node's
		}
		for _, ip := range p.IPs {
			d.pods[ip] = PodRef{Namespace: p.Namespace, Name: p.Name}
		}
	}
	for _, lp := range m.LocalPods {
		ref := PodRef{Namespace: lp.Namespace, Name: lp.Name}
		for _, ip := range lp.IPs {
			d.pods[ip] = ref
		}
		for _, iso := range []struct {
			dir        selectors.Direction
			iso, audit *selectors.Isolation
		}{{selectors.Ingress, lp.Ingress, lp.AuditIngress}, {selectors.Egress, lp.Egress, lp.AuditEgress}} {
			if iso.iso == nil && iso.audit == nil {
				continue
			}
			d.points[nft.PodChainName(lp, iso.dir)] = podPoint{pod: ref, dir: iso.dir, isolating: policyNames(iso.iso), audited: policyNames(iso.audit)}
		}
	}
	return d
}

// policyNames names the policies of an isolation (nil: none).
func policyNames(iso *selectors.Isolation) []string {
	if iso == nil {
		return nil
	}
	names := make([]string, len(iso.Policies))
	for i, p := range iso.Policies {
		names[i] = p.String()
	}
	return names
}

// WithPeers makes d ask find for the addresses that neither its model nor its pods hold; it returns
// d, before d is handed to a Logger.
func (d *Directory) WithPeers(find PeerFinder) *Directory {
	d.peers = find
	return d
}

// pod returns the pod holding addr, if known.
func (d *Directory) pod(addr netip.Addr) (PodRef, bool) {
	if d == nil {
		return PodRef{}, false
	}
	if p, ok := d.pods[addr]; ok || d.peers == nil {
		return p, ok
	}
	return d.peers(addr)
}

// rule returns the labels of a policy rule's counter.
func (d *Directory) rule(counter string) (nft.CounterLabels, bool) {
	if d == nil || d.rules == nil {
		return nft.CounterLabels{}, false
	}
	c, ok := d.rules.CounterByName(counter)
	if !ok || c.Labels.DefaultDeny() {
		return nft.CounterLabels{}, false
	}
	return c.Labels, true
}

// point returns the isolated direction whose default deny a pod chain ends with.
func (d *Directory) point(chain string) (podPoint, bool) {
	if d == nil {
		return podPoint{}, false
	}
	p, ok := d.points[chain]
	return p, ok
}
