package controllers_test

import (
	"net/netip"
	"strings"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/nft"
)

// Builders: makePod(namespace, name, tweaks...) and friends, so that a spec reads as the situation it sets
// up.

type podTweak func(*corev1.Pod)

func makePod(namespace, name string, tweaks ...podTweak) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			Containers:                   []corev1.Container{{Name: "main", Image: "registry.invalid/app"}},
			AutomountServiceAccountToken: ptr.To(false),
		},
	}
	for _, tweak := range tweaks {
		tweak(pod)
	}
	return pod
}

func withLabels(kv ...string) podTweak {
	return func(p *corev1.Pod) { p.Labels = labelsOf(kv...) }
}

func onNode(node string) podTweak {
	return func(p *corev1.Pod) { p.Spec.NodeName = node }
}

// running gives the pod an address and the Running phase; createPod writes them through the status
// subresource, as the kubelet does.
func running(ip netip.Addr) podTweak {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ip.String()
		p.Status.PodIPs = []corev1.PodIP{{IP: ip.String()}}
	}
}

func labelsOf(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func createNamespace(name string, kv ...string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labelsOf(kv...)}}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, ns))).To(Succeed())
	// No controller-manager runs in the test: the ServiceAccount admission wants the default account.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, sa))).To(Succeed())
}

func createPod(pod *corev1.Pod) {
	status := pod.Status
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status = status
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}

func setPodIP(namespace, name string, ip netip.Addr) {
	pod := &corev1.Pod{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod)).To(Succeed())
	running(ip)(pod)
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}

// relabel replaces the labels of a pod or namespace.
func relabel(obj client.Object, kv ...string) {
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	before := obj.DeepCopyObject().(client.Object)
	obj.SetLabels(labelsOf(kv...))
	Expect(k8sClient.Patch(ctx, obj, client.MergeFrom(before))).To(Succeed())
}

func deletePolicy(namespace, name string) {
	policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), policy))
	}).Should(BeTrue())
}

// What the fake kernel holds.

func programmed() *nft.Ruleset {
	rs := kernel.Ruleset()
	if rs == nil {
		return &nft.Ruleset{}
	}
	return rs
}

func lastTransaction() *nft.Transaction {
	txs := kernel.Transactions()
	if len(txs) == 0 {
		return &nft.Transaction{}
	}
	return txs[len(txs)-1]
}

func findChain(rs *nft.Ruleset, name string) (nft.Chain, bool) {
	for _, c := range rs.Chains {
		if c.Name == name {
			return c, true
		}
	}
	return nft.Chain{}, false
}

// podRules returns the rules that judge a pod's traffic in one of its chains: the chain's own, with
// each jump replaced by the rules of the policy chain it jumps to. ok is false when there is no
// such chain.
func podRules(rs *nft.Ruleset, name string) (rules []nft.Rule, ok bool) {
	c, ok := findChain(rs, name)
	if !ok {
		return nil, false
	}
	for _, r := range c.Rules {
		if r.Verdict.Kind != nft.Jump {
			rules = append(rules, r)
			continue
		}
		target, found := findChain(rs, r.Verdict.Chain)
		if !found {
			return nil, false
		}
		rules = append(rules, target.Rules...)
	}
	return rules, true
}

// redisPeers returns the addresses of the peer set that a policy's rules in redis's ingress chain match
// against. Rules are found by their comment, "namespace/name direction[index]".
func redisPeers(rs *nft.Ruleset, policy string) []netip.Addr {
	rules, ok := podRules(rs, redisChain)
	if !ok {
		return nil
	}
	for _, r := range rules {
		if !strings.HasPrefix(r.Comment, policy+" ") {
			continue
		}
		for _, m := range r.Matches {
			if in, ok := m.(nft.AddrInSet); ok {
				return setAddrs(rs, in.Set)
			}
		}
	}
	return nil
}

func setAddrs(rs *nft.Ruleset, name string) []netip.Addr {
	addrs := []netip.Addr{}
	for _, s := range rs.Sets {
		if s.Name != name {
			continue
		}
		// Peer sets of pods are hash sets of addresses; those with ipBlocks are interval sets.
		for _, e := range s.Elements {
			if !s.Interval {
				addrs = append(addrs, e.Addr)
				continue
			}
			for a := e.Addr; a.Compare(e.AddrEnd) <= 0 && len(addrs) < 1024; a = a.Next() {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// verdictFor traces a new TCP connection from src, arriving from another node, to dst:port.
func verdictFor(src, dst netip.Addr, port uint16) nft.VerdictKind {
	return nft.Trace(programmed(), nft.Packet{
		Hook: nft.HookForward, Iifname: remoteIfname,
		Src: src, Dst: dst, Proto: nft.ProtoTCP, DstPort: port, Ct: nft.CtNew,
	}).Verdict
}

// elementOpsOnly reports whether a transaction only added or deleted set and map elements: the
// minimal change for pods and namespaces coming and going from peer sets.
func elementOpsOnly(tx *nft.Transaction) bool {
	if len(tx.Ops) == 0 {
		return false
	}
	for _, op := range tx.Ops {
		switch op.(type) {
		case nft.AddElements, nft.DeleteElements, nft.AddMapElements, nft.DeleteMapElements:
		default:
			return false
		}
	}
	return true
}

func fullReplace(tx *nft.Transaction) bool {
	for _, op := range tx.Ops {
		if _, ok := op.(nft.DeleteTable); ok {
			return true
		}
	}
	return false
}
