package explain

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Explain answers what the policies of a snapshot say about a new connection from src to dst on a
// port, per direction: egress of the source when it is a pod, ingress of the destination when it
// is one. The reading is the agent's (selectors.ReadPolicy and its matching functions). family is
// 4 or 6 to choose the addresses of dual-stack pods, 0 for the family of a target given as an
// address, else of the source pod's first address.
func Explain(s *selectors.Snapshot, src, dst Target, port PortSpec, family int) (*SpecAnswer, error) {
	if family != 0 && family != 4 && family != 6 {
		return nil, fmt.Errorf("family %d is not 4 or 6", family)
	}
	srcPod, srcAddrs, err := resolveTarget(s, src)
	if err != nil {
		return nil, fmt.Errorf("resolving source: %w", err)
	}
	dstPod, dstAddrs, err := resolveTarget(s, dst)
	if err != nil {
		return nil, fmt.Errorf("resolving destination: %w", err)
	}
	srcIP, dstIP, err := chooseAddresses(src, dst, srcAddrs, dstAddrs, family)
	if err != nil {
		return nil, err
	}
	// An address given for a pod's side names the pod that holds it, and a pod's side may be
	// reached on any of its addresses: the pod found is the one the agent's sets hold.
	number, err := resolvePort(port, dstPod)
	if err != nil {
		return nil, err
	}
	conn := Connection{
		Source: endpointOf(srcPod, srcAddrs), Destination: endpointOf(dstPod, dstAddrs),
		SrcIP: srcIP, DstIP: dstIP, Protocol: port.Protocol, Port: number, PortName: port.Name,
	}

	e := &evaluator{snapshot: s, conn: &conn}
	e.readPolicies()
	answer := &SpecAnswer{Connection: conn, Allowed: true}
	if srcPod != nil {
		answer.Egress = e.direction(srcPod, selectors.Egress, dstIP, dstPod, dstPod)
		answer.Allowed = answer.Egress.Allowed
	}
	if dstPod != nil {
		// "a named port on a pod" is, for ingress, a port of the pod being reached.
		answer.Ingress = e.direction(dstPod, selectors.Ingress, srcIP, srcPod, dstPod)
		answer.Allowed = answer.Allowed && answer.Ingress.Allowed
	}
	answer.Problems = e.problems
	return answer, nil
}

// resolveTarget finds a target's pod (nil for an address no eligible pod holds) and its addresses.
func resolveTarget(s *selectors.Snapshot, t Target) (*selectors.Pod, []netip.Addr, error) {
	if t.IsPod() {
		var found *selectors.Pod
		for i := range s.Pods {
			if p := &s.Pods[i]; p.Namespace == t.Namespace && p.Name == t.Name {
				found = p
			}
		}
		switch {
		case found == nil:
			return nil, nil, fmt.Errorf("pod %s not found", t)
		case found.HostNetwork:
			// A hostNetwork pod uses its node's addresses; NetworkPolicy does not apply to it
			// and it is no peer: it is an address outside the pod network.
			if len(found.IPs) == 0 {
				return nil, nil, fmt.Errorf("hostNetwork pod %s has no address yet", t)
			}
			return nil, found.IPs, nil
		case len(found.IPs) == 0:
			return nil, nil, fmt.Errorf("pod %s has no address yet", t)
		case !selectors.Eligible(found):
			return nil, nil, fmt.Errorf("pod %s has terminated (%s): its address may belong to another pod", t, found.Phase)
		}
		return found, found.IPs, nil
	}
	if !t.IP.IsValid() {
		return nil, nil, fmt.Errorf("empty target")
	}
	var holders []*selectors.Pod
	for i := range s.Pods {
		if p := &s.Pods[i]; selectors.Eligible(p) && slices.Contains(p.IPs, t.IP) {
			holders = append(holders, p)
		}
	}
	switch len(holders) {
	case 0:
		return nil, []netip.Addr{t.IP}, nil
	case 1:
		return holders[0], []netip.Addr{t.IP}, nil
	default:
		names := make([]string, len(holders))
		for i, p := range holders {
			names[i] = p.Namespace + "/" + p.Name
		}
		return nil, nil, fmt.Errorf("address %s is held by several pods: %v", t.IP, names)
	}
}

// chooseAddresses picks the source and destination addresses of one family.
func chooseAddresses(src, dst Target, srcAddrs, dstAddrs []netip.Addr, family int) (netip.Addr, netip.Addr, error) {
	if family == 0 {
		// An address given as a target fixes its side's family; otherwise the source pod's
		// first address chooses.
		family = familyOf(srcAddrs[0])
		if src.IsPod() && !dst.IsPod() {
			family = familyOf(dstAddrs[0])
		}
	}
	srcIP, okSrc := firstOfFamily(srcAddrs, family)
	dstIP, okDst := firstOfFamily(dstAddrs, family)
	if !okSrc || !okDst {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("source %v and destination %v share no address of IPv%d", srcAddrs, dstAddrs, family)
	}
	return srcIP, dstIP, nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func firstOfFamily(addrs []netip.Addr, family int) (netip.Addr, bool) {
	for _, a := range addrs {
		if familyOf(a) == family {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// resolvePort returns the port number: the given one, or a name's number on the destination pod.
func resolvePort(port PortSpec, dstPod *selectors.Pod) (uint16, error) {
	if port.Name == "" {
		return port.Number, nil
	}
	if dstPod == nil {
		return 0, fmt.Errorf("port %s is a name; only a destination pod has named ports", port)
	}
	numbers := selectors.NamedPortNumbers(dstPod, port.Name, port.Protocol)
	if len(numbers) == 0 {
		return 0, fmt.Errorf("pod %s/%s defines no %s container port named %q", dstPod.Namespace, dstPod.Name, port.Protocol, port.Name)
	}
	return numbers[0], nil
}

func endpointOf(p *selectors.Pod, addrs []netip.Addr) Endpoint {
	if p == nil {
		return Endpoint{Kind: ExternalEndpoint, IPs: addrs}
	}
	return Endpoint{Kind: PodEndpoint, Namespace: p.Namespace, Name: p.Name, Node: p.Node, Labels: p.Labels, IPs: p.IPs}
}

// evaluator evaluates the policies of a snapshot for one connection.
type evaluator struct {
	snapshot *selectors.Snapshot
	conn     *Connection
	policies []*selectors.PolicyReading // by namespace, then name, as the agent orders rules
	audited  map[selectors.PolicyRef]bool
	problems []string
	reported map[selectors.PolicyRef]bool
}

func (e *evaluator) readPolicies() {
	e.audited = map[selectors.PolicyRef]bool{}
	for _, np := range e.snapshot.Policies {
		if np != nil {
			pr := selectors.ReadPolicy(np)
			e.policies = append(e.policies, pr)
			if selectors.Audited(np) {
				e.audited[pr.Ref] = true
			}
		}
	}
	slices.SortFunc(e.policies, func(a, b *selectors.PolicyReading) int {
		return cmp.Or(cmp.Compare(a.Ref.Namespace, b.Ref.Namespace), cmp.Compare(a.Ref.Name, b.Ref.Name))
	})
	e.reported = make(map[selectors.PolicyRef]bool)
}

// direction answers for one pod and direction. peerAddr and peerPod are the other end (peerPod nil
// when the address is no pod's); namedOn is the pod whose named ports count: the destination.
//
// "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod ... OR if the
// traffic matches at least one ingress rule across all of the NetworkPolicy objects whose
// podSelector matches the pod." Likewise for egress. Audited policies are left out, and answered
// apart in Audit.
func (e *evaluator) direction(pod *selectors.Pod, dir selectors.Direction, peerAddr netip.Addr, peerPod, namedOn *selectors.Pod) *DirectionAnswer {
	da := &DirectionAnswer{Direction: Direction(dir), Pod: pod.Namespace + "/" + pod.Name}
	for _, pr := range e.policies {
		if !pr.Selects(pod) || !pr.Affects(dir) {
			continue
		}
		ref := PolicyRef{Namespace: pr.Ref.Namespace, Name: pr.Ref.Name}
		if e.audited[pr.Ref] {
			e.audit(da, pr, ref, peerAddr, peerPod, namedOn)
			continue
		}
		da.Isolated = true
		da.IsolatedBy = append(da.IsolatedBy, ref)
		e.noteProblems(pr)
		for _, rule := range pr.Rules(dir) {
			admit, reasons := e.rule(&rule, peerAddr, peerPod, namedOn)
			switch {
			case admit != nil && da.AdmittedBy == nil:
				admit.Policy = ref
				da.AdmittedBy = admit
			case admit == nil:
				da.Rejections = append(da.Rejections, RuleRejection{Policy: ref, Direction: Direction(dir), Rule: rule.Index, Reasons: reasons})
			}
		}
	}
	da.Allowed = !da.Isolated || da.AdmittedBy != nil
	if da.Allowed {
		da.Rejections = nil
	}
	if a := da.Audit; a != nil {
		// Enforcing the audited policies adds their rules to the enforced ones, and isolates the
		// pod if nothing enforced did: it denies only a pod that they alone isolate and do not admit.
		switch {
		case da.Allowed && !da.Isolated && a.AdmittedBy == nil:
			a.Verdict = WouldDrop
		case !da.Allowed && a.AdmittedBy != nil:
			a.Verdict = WouldAllow
		}
	}
	return da
}

// audit adds an audited policy selecting the pod to da.Audit.
func (e *evaluator) audit(da *DirectionAnswer, pr *selectors.PolicyReading, ref PolicyRef, peerAddr netip.Addr, peerPod, namedOn *selectors.Pod) {
	if da.Audit == nil {
		da.Audit = &AuditAnswer{}
	}
	da.Audit.Policies = append(da.Audit.Policies, ref)
	e.noteProblems(pr)
	for _, rule := range pr.Rules(selectors.Direction(da.Direction)) {
		if admit, _ := e.rule(&rule, peerAddr, peerPod, namedOn); admit != nil && da.Audit.AdmittedBy == nil {
			admit.Policy = ref
			da.Audit.AdmittedBy = admit
		}
	}
}

func (e *evaluator) noteProblems(pr *selectors.PolicyReading) {
	if e.reported[pr.Ref] {
		return
	}
	e.reported[pr.Ref] = true
	for _, p := range pr.Problems {
		e.problems = append(e.problems, p.String())
	}
}

// rule evaluates one rule: "The traffic must match both ports and from" (or to). It returns what
// admits, or every reason it does not.
func (e *evaluator) rule(rule *selectors.RuleReading, peerAddr netip.Addr, peerPod, namedOn *selectors.Pod) (*RuleRef, []Reason) {
	ref := &RuleRef{Direction: Direction(rule.Direction), Rule: rule.Index, AnyPeer: rule.AnyPeer, AllPorts: rule.AllPorts}
	var reasons []Reason
	peerOK := rule.AnyPeer
	if peerOK {
		ref.PeerText = "any peer"
	}
	for i := range rule.Peers {
		if peerOK {
			break
		}
		pe := &rule.Peers[i]
		if reason, ok := e.peer(pe, peerAddr, peerPod); ok {
			peerOK, ref.Peer, ref.PeerText = true, pe.Index, peerText(pe)
		} else {
			reasons = append(reasons, reason)
		}
	}
	if peerOK {
		reasons = nil // the peers' reasons matter only when no peer matches
	}
	portOK := rule.AllPorts
	if portOK {
		ref.PortText = "all ports"
	}
	var portReasons []Reason
	for i := range rule.Ports {
		if portOK {
			break
		}
		po := &rule.Ports[i]
		if po.Admits(e.conn.Protocol, e.conn.Port, namedOn) {
			portOK, ref.Port, ref.PortText = true, po.Index, portText(po, namedOn)
		} else {
			portReasons = append(portReasons, e.portReason(po, namedOn))
		}
	}
	if !portOK {
		reasons = append(reasons, portReasons...)
	}
	if peerOK && portOK {
		return ref, nil
	}
	if len(reasons) == 0 {
		// A rule whose from/to or ports are all entries that cannot be understood.
		reasons = append(reasons, Reason{Kind: ReasonPeerInvalid, Text: "the rule matches nothing"})
	}
	return nil, reasons
}

// peer says whether one peer matches the other end, and why not when it does not.
func (e *evaluator) peer(pe *selectors.PeerReading, addr netip.Addr, pod *selectors.Pod) (Reason, bool) {
	index := pe.Index
	reason := func(kind ReasonKind, format string, args ...any) Reason {
		return Reason{Kind: kind, Peer: &index, Text: fmt.Sprintf("peer %d ", index) + fmt.Sprintf(format, args...)}
	}
	switch {
	case pe.Invalid:
		return reason(ReasonPeerInvalid, "matches nothing: %s", pe.Problem), false
	case pe.IPBlock:
		if pe.AdmitsAddr(addr) {
			return Reason{}, true
		}
		if !pe.CIDR.Contains(addr) {
			return reason(ReasonIPBlockCIDR, "wants ipBlock %s, which does not hold %s", pe.CIDR, addr), false
		}
		for _, except := range pe.Except {
			if except.Contains(addr) {
				return reason(ReasonIPBlockExcept, "wants ipBlock %s, which holds %s, but its except %s removes it", pe.CIDR, addr, except), false
			}
		}
		return reason(ReasonIPBlockCIDR, "wants ipBlock %s, which does not hold %s", ipBlockText(pe), addr), false
	case pod == nil:
		return reason(ReasonPeerNotPod, "wants %s, and %s is no pod's address", peerText(pe), addr), false
	}
	nsLabels := e.namespaceLabels(pod.Namespace)
	if pe.AdmitsPod(pod, nsLabels) {
		return Reason{}, true
	}
	who := pod.Namespace + "/" + pod.Name
	switch {
	case pe.NamespaceSelector == nil && pod.Namespace != pe.Namespace:
		return reason(ReasonPeerNamespace, "wants pods of namespace %s (no namespaceSelector), %s is in %s", pe.Namespace, who, pod.Namespace), false
	case pe.NamespaceSelector != nil && !pe.NamespaceSelector.Matches(nsLabels):
		return reason(ReasonPeerNamespaceSelector, "wants namespaces %s, namespace %s has %s",
			selectorText(pe.NamespaceSelector), pod.Namespace, failingLabels(pe.NamespaceSelector, nsLabels)), false
	default:
		return reason(ReasonPeerPodSelector, "wants pods %s, %s has %s", selectorText(pe.PodSelector), who, failingLabels(pe.PodSelector, labels.Set(pod.Labels))), false
	}
}

func (e *evaluator) namespaceLabels(name string) labels.Set {
	for _, ns := range e.snapshot.Namespaces {
		if ns.Name == name {
			return selectors.NamespaceLabels(name, ns.Labels)
		}
	}
	return selectors.NamespaceLabels(name, nil)
}

// portReason says why a port entry does not match the connection.
func (e *evaluator) portReason(po *selectors.PortReading, namedOn *selectors.Pod) Reason {
	index := po.Index
	reason := func(kind ReasonKind, format string, args ...any) Reason {
		return Reason{Kind: kind, Port: &index, Text: fmt.Sprintf("port %d ", index) + fmt.Sprintf(format, args...)}
	}
	switch {
	case po.Invalid:
		return reason(ReasonPortInvalid, "matches nothing: %s", po.Problem)
	case po.Protocol != e.conn.Protocol:
		return reason(ReasonProtocol, "wants %s, the connection is %s", portText(po, nil), e.conn.Protocol)
	case po.Name == "":
		return reason(ReasonPort, "wants %s, got %d", portText(po, nil), e.conn.Port)
	case namedOn == nil:
		return reason(ReasonNamedPort, "wants %s, and %s is no pod's address: it has no named ports", portText(po, nil), e.conn.DstIP)
	}
	who := namedOn.Namespace + "/" + namedOn.Name
	numbers := selectors.NamedPortNumbers(namedOn, po.Name, po.Protocol)
	if len(numbers) == 0 {
		return reason(ReasonNamedPort, "wants %s, and %s defines no %s container port named %q", portText(po, nil), who, po.Protocol, po.Name)
	}
	return reason(ReasonNamedPort, "wants %s, which is %v on %s, got %d", portText(po, nil), numbers, who, e.conn.Port)
}
