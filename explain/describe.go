package explain

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// peerText describes a peer for people: "pods app=redis", "pods app=redis in namespaces team=a",
// "ipBlock 10.0.0.0/8 except 10.1.0.0/16".
func peerText(pe *selectors.PeerReading) string {
	switch {
	case pe.Invalid:
		return "nothing (" + pe.Problem + ")"
	case pe.IPBlock:
		return "ipBlock " + ipBlockText(pe)
	case pe.NamespaceSelector == nil:
		return "pods " + selectorText(pe.PodSelector)
	default:
		return "pods " + selectorText(pe.PodSelector) + " in namespaces " + selectorText(pe.NamespaceSelector)
	}
}

func ipBlockText(pe *selectors.PeerReading) string {
	s := pe.CIDR.String()
	if len(pe.Except) > 0 {
		excepts := make([]string, len(pe.Except))
		for i, e := range pe.Except {
			excepts[i] = e.String()
		}
		s += " except " + strings.Join(excepts, ",")
	}
	return s
}

// selectorText is a selector as kubectl writes it; "{} (all)" for the empty selector.
func selectorText(sel labels.Selector) string {
	if sel == nil {
		return "(invalid)"
	}
	if sel.Empty() {
		return "{} (all)"
	}
	return sel.String()
}

// failingLabels says what a label set has for each requirement of a selector it fails:
// "app=busybox", "no label tier".
func failingLabels(sel labels.Selector, set labels.Set) string {
	reqs, _ := sel.Requirements()
	var parts []string
	for i := range reqs {
		req := &reqs[i]
		if req.Matches(set) {
			continue
		}
		if set.Has(req.Key()) {
			parts = append(parts, req.Key()+"="+set.Get(req.Key()))
		} else {
			parts = append(parts, "no label "+req.Key())
		}
	}
	if len(parts) == 0 {
		return "labels {" + set.String() + "}"
	}
	return strings.Join(parts, ", ")
}

// portText describes a port entry: "6379/TCP", "8000-8080/TCP", "all TCP ports", "port name
// http/TCP"; for a named port that matched, with its number on the pod reached.
func portText(po *selectors.PortReading, namedOn *selectors.Pod) string {
	switch {
	case po.Invalid:
		return "nothing (" + po.Problem + ")"
	case po.Name != "":
		s := fmt.Sprintf("port name %s/%s", po.Name, po.Protocol)
		if namedOn != nil {
			if numbers := selectors.NamedPortNumbers(namedOn, po.Name, po.Protocol); len(numbers) > 0 {
				s += fmt.Sprintf(" (%d on %s/%s)", numbers[0], namedOn.Namespace, namedOn.Name)
			}
		}
		return s
	case po.Range.AllOfProtocol():
		return fmt.Sprintf("all %s ports", po.Protocol)
	case po.Range.First == po.Range.Last:
		return fmt.Sprintf("%d/%s", po.Range.First, po.Protocol)
	default:
		return fmt.Sprintf("%d-%d/%s", po.Range.First, po.Range.Last, po.Protocol)
	}
}
