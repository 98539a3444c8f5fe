package scenario

// IP plan of the fake lab: the pod at position p (0-based) of the namespace at position n of the
// cluster, both in file order, has
//
//	IPv4 10.244.n.(10+p)
//	IPv6 fd00:10:244:n::(10+p)    (hex, so x/a is fd00:10:244::a)
//
// so in the default cluster x/a is 10.244.0.10, y/b 10.244.1.11 and z/c 10.244.2.12.

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var _ Cluster = (*fakeCluster)(nil)

// fakeCluster is an in-memory lab. It enforces the ingress half of NetworkPolicy (egress policies
// are stored and ignored), and every change becomes visible to probes only lag after it was made,
// the way a real enforcer needs time to sync.
type fakeCluster struct {
	lag            time.Duration
	sctp           bool          // whether SCTP can be probed
	ignorePolicies bool          // a broken enforcer: everything stays allowed
	applyErr       error         // returned by ApplyPolicies
	probeDelay     time.Duration // how long a probe takes
	// serviceBypass makes every probe through a Service go through, as a dataplane that judges the
	// ClusterIP instead of the backend would.
	serviceBypass bool
	// noEndpoints lists the pods whose own Service has no ready endpoint.
	noEndpoints map[string]bool

	mu          sync.Mutex
	spec        ClusterSpec
	ips         map[Family]map[string]netip.Addr
	latest      *fakeState
	visible     *fakeState
	visibleAt   time.Time
	calls       []string
	applied     []*networkingv1.NetworkPolicy
	inFlight    int
	maxInFlight int
	staleProbes int // probes answered from a state older than the latest change
	probesVia   map[Via]int
}

// fakeState is one immutable version of the cluster's policies and labels.
type fakeState struct {
	policies  map[string]*networkingv1.NetworkPolicy // by "namespace/name"
	nsLabels  map[string]map[string]string
	podLabels map[string]map[string]string
}

func (s *fakeState) clone() *fakeState {
	return &fakeState{
		policies:  maps.Clone(s.policies),
		nsLabels:  maps.Clone(s.nsLabels),
		podLabels: maps.Clone(s.podLabels),
	}
}

func (f *fakeCluster) Setup(_ context.Context, c ClusterSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "setup")
	f.spec = c
	f.ips = map[Family]map[string]netip.Addr{IPv4: {}, IPv6: {}}
	st := &fakeState{policies: map[string]*networkingv1.NetworkPolicy{}, nsLabels: map[string]map[string]string{}, podLabels: map[string]map[string]string{}}
	for n, ns := range c.Namespaces {
		st.nsLabels[ns.Name] = withNamespaceName(ns.Name, ns.Labels)
		for p, pod := range ns.Pods {
			ref := ns.Name + "/" + pod.Name
			st.podLabels[ref] = maps.Clone(pod.Labels)
			f.ips[IPv4][ref] = netip.AddrFrom4([4]byte{10, 244, byte(n), byte(10 + p)})
			f.ips[IPv6][ref] = netip.MustParseAddr(fmt.Sprintf("fd00:10:244:%x::%x", n, 10+p))
		}
	}
	f.latest, f.visible = st, st
	return nil
}

func withNamespaceName(name string, l map[string]string) map[string]string {
	out := maps.Clone(l)
	if out == nil {
		out = map[string]string{}
	}
	out[namespaceNameLabel] = name
	return out
}

func (f *fakeCluster) PodIP(pod string, family Family) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ip, ok := f.ips[family][pod]
	if !ok {
		return netip.Addr{}, fmt.Errorf("no pod %s", pod)
	}
	return ip, nil
}

// change records a new version of the state, visible to probes after the lag.
func (f *fakeCluster) change(call string, mutate func(*fakeState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	next := f.latest.clone()
	mutate(next)
	f.latest = next
	f.visibleAt = time.Now().Add(f.lag)
}

func (f *fakeCluster) ApplyPolicies(_ context.Context, policies []*networkingv1.NetworkPolicy) error {
	if f.applyErr != nil {
		return f.applyErr
	}
	f.mu.Lock()
	f.applied = append(f.applied, policies...)
	f.mu.Unlock()
	f.change("apply", func(st *fakeState) {
		for _, p := range policies {
			st.policies[p.Namespace+"/"+p.Name] = p
		}
	})
	return nil
}

func (f *fakeCluster) DeletePolicies(_ context.Context, refs []string) error {
	f.change("delete", func(st *fakeState) {
		for _, ref := range refs {
			delete(st.policies, ref)
		}
	})
	return nil
}

func (f *fakeCluster) Relabel(_ context.Context, r Relabel) error {
	f.change("relabel", func(st *fakeState) {
		if r.Kind == KindNamespace {
			st.nsLabels[r.Name] = withNamespaceName(r.Name, r.Labels)
		} else {
			st.podLabels[r.Name] = maps.Clone(r.Labels)
		}
	})
	return nil
}

func (f *fakeCluster) SupportsProtocol(protocol string) (bool, string) {
	if protocol == ProtocolSCTP && !f.sctp {
		return false, "the fake lab has no SCTP sockets"
	}
	return true, ""
}

func (f *fakeCluster) Teardown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "teardown")
	return nil
}

func (f *fakeCluster) Probe(ctx context.Context, src, dst string, port int, protocol string, family Family) (bool, error) {
	return f.probe(ctx, ViaPod, src, dst, port, protocol, family)
}

func (f *fakeCluster) ProbeService(ctx context.Context, src, dst string, port int, protocol string, family Family) (bool, error) {
	if f.noEndpoints[dst] {
		return false, fmt.Errorf("probing %s -> Service of %s: no endpoints", src, dst)
	}
	allowed, err := f.probe(ctx, ViaService, src, dst, port, protocol, family)
	return allowed || (err == nil && f.serviceBypass), err
}

func (f *fakeCluster) probe(_ context.Context, via Via, src, dst string, port int, protocol string, family Family) (bool, error) {
	f.mu.Lock()
	if f.probesVia == nil {
		f.probesVia = map[Via]int{}
	}
	f.probesVia[via]++
	if !time.Now().Before(f.visibleAt) {
		f.visible = f.latest
	}
	if f.visible != f.latest {
		f.staleProbes++
	}
	st, srcIP := f.visible, f.ips[family][src]
	dstPod, ok := f.spec.Pod(dst)
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	time.Sleep(f.probeDelay)
	if !ok || !srcIP.IsValid() {
		return false, fmt.Errorf("probing %s -> %s: unknown pod", src, dst)
	}
	if !dstPod.Serves(port, protocol) {
		return false, nil
	}
	return f.ignorePolicies || st.ingressAllows(src, srcIP, dst, dstPod, port, protocol), nil
}

func (f *fakeCluster) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ingressAllows applies the ingress rules of the policies of dst's namespace: dst is isolated when
// a policy with an Ingress type selects it, and then a rule must admit the source and the port.
func (s *fakeState) ingressAllows(src string, srcIP netip.Addr, dst string, dstPod *Pod, port int, protocol string) bool {
	dstNS, _, _ := splitRef(dst)
	isolated := false
	for _, p := range s.policies {
		if p.Namespace != dstNS || !hasIngressType(p) || !selects(&p.Spec.PodSelector, s.podLabels[dst]) {
			continue
		}
		isolated = true
		for _, rule := range p.Spec.Ingress {
			if portsAdmit(rule.Ports, dstPod, port, protocol) && s.peersAdmit(rule.From, p.Namespace, src, srcIP) {
				return true
			}
		}
	}
	return !isolated
}

func hasIngressType(p *networkingv1.NetworkPolicy) bool {
	return len(p.Spec.PolicyTypes) == 0 || slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

func (s *fakeState) peersAdmit(peers []networkingv1.NetworkPolicyPeer, policyNS, src string, srcIP netip.Addr) bool {
	if len(peers) == 0 {
		return true
	}
	srcNS, _, _ := splitRef(src)
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if inBlock(peer.IPBlock, srcIP) {
				return true
			}
			continue
		}
		nsOK := srcNS == policyNS
		if peer.NamespaceSelector != nil {
			nsOK = selects(peer.NamespaceSelector, s.nsLabels[srcNS])
		}
		if nsOK && (peer.PodSelector == nil || selects(peer.PodSelector, s.podLabels[src])) {
			return true
		}
	}
	return false
}

func inBlock(b *networkingv1.IPBlock, ip netip.Addr) bool {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		if except, err := netip.ParsePrefix(e); err == nil && except.Contains(ip) {
			return false
		}
	}
	return true
}

func portsAdmit(ports []networkingv1.NetworkPolicyPort, dstPod *Pod, port int, protocol string) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		proto := ProtocolTCP
		if pp.Protocol != nil {
			proto = string(*pp.Protocol)
		}
		if proto != protocol {
			continue
		}
		switch {
		case pp.Port == nil:
			return true
		case pp.Port.Type == intstr.String:
			for _, served := range dstPod.Ports {
				if served.Name == pp.Port.StrVal && served.Protocol == protocol && served.Port == port {
					return true
				}
			}
		case pp.EndPort != nil:
			if port >= pp.Port.IntValue() && port <= int(*pp.EndPort) {
				return true
			}
		case pp.Port.IntValue() == port:
			return true
		}
	}
	return false
}
