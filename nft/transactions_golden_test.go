package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// The story of TestGoldenTransactions, on node n1 (IP plan of this package's tests):
//
//	shop/web-1     n1  198.18.0.10  app=web, named port http = TCP 8080
//	shop/db-1      n1  198.18.0.20  app=db
//	shop/web-2     n2  198.18.1.11  app=web
//	shop/client-1  n2  198.18.1.30  app=client
//	tools/probe-1  n2  198.18.1.40  app=probe (namespace team=tools)
//
// Policies: shop/db-ingress (app=web may reach app=db on TCP 5432), shop/web-ingress (app=client
// may reach app=web on its port http; namespaces team=tools on TCP 9090) and shop/web-egress (app=web
// may reach app=db on TCP 5432).

// storyPod is a running pod of the story.
func storyPod(ns, name, node, ip string, labels ...string) selectors.Pod {
	p := selectors.Pod{Namespace: ns, Name: name, Node: node, Phase: corev1.PodRunning, Labels: map[string]string{},
		IPs: []netip.Addr{addr(ip)}, Ports: []selectors.ContainerPort{{Name: "http", Number: 8080, Protocol: corev1.ProtocolTCP}}}
	for i := 0; i+1 < len(labels); i += 2 {
		p.Labels[labels[i]] = labels[i+1]
	}
	return p
}

func storyNamespace(name, team string) selectors.Namespace {
	return selectors.Namespace{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name, "team": team}}
}

func appSelector(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func tcpPort(port intstr.IntOrString) networkingv1.NetworkPolicyPort {
	proto := corev1.ProtocolTCP
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port}
}

func dbIngress(port int) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *appSelector("db"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: appSelector("web")}},
				Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromInt32(int32(port)))},
			}},
		},
	}
}

func storySnapshot() *selectors.Snapshot {
	return &selectors.Snapshot{
		Node:       "n1",
		Namespaces: []selectors.Namespace{storyNamespace("shop", "shop"), storyNamespace("tools", "tools")},
		Pods: []selectors.Pod{
			storyPod("shop", "web-1", "n1", "198.18.0.10", "app", "web"),
			storyPod("shop", "db-1", "n1", "198.18.0.20", "app", "db"),
			storyPod("shop", "web-2", "n2", "198.18.1.11", "app", "web"),
			storyPod("shop", "client-1", "n2", "198.18.1.30", "app", "client"),
			storyPod("tools", "probe-1", "n2", "198.18.1.40", "app", "probe"),
		},
		Policies: []*networkingv1.NetworkPolicy{
			dbIngress(5432),
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-ingress"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: *appSelector("web"),
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
					Ingress: []networkingv1.NetworkPolicyIngressRule{
						{
							From:  []networkingv1.NetworkPolicyPeer{{PodSelector: appSelector("client")}},
							Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromString("http"))},
						},
						{
							From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
								MatchLabels: map[string]string{"team": "tools"}}}},
							Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromInt32(9090))},
						},
					},
				},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-egress"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: *appSelector("web"),
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
					Egress: []networkingv1.NetworkPolicyEgressRule{{
						To:    []networkingv1.NetworkPolicyPeer{{PodSelector: appSelector("db")}},
						Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromInt32(5432))},
					}},
				},
			},
		},
	}
}

// recordingBackend passes transactions to a Fake and records every one it was asked to run,
// including those the Fake refused.
type recordingBackend struct {
	*Fake
	sent []*Transaction
}

func (b *recordingBackend) Run(tx *Transaction) error {
	b.sent = append(b.sent, tx)
	return b.Fake.Run(tx)
}

// story drives a real selectors.Resolver, a Compiler and an Applier on a Fake as the agent does,
// and writes down the transactions each step sent.
type story struct {
	t        *testing.T
	resolver *selectors.Resolver
	compiler Compiler
	fake     *Fake
	backend  *recordingBackend
	applier  *Applier
	out      strings.Builder
	steps    int
	// podIfacePrefix is the compiler's CompileInput.PodInterfacePrefix ("": the default mode).
	podIfacePrefix string
}

func newStory(t *testing.T) *story {
	s := &story{t: t, resolver: selectors.NewResolver("n1"), fake: NewFake("nftpolicy")}
	s.backend = &recordingBackend{Fake: s.fake}
	s.applier = NewApplier(s.backend)
	s.resolver.Load(storySnapshot())
	return s
}

// step syncs once after change and records the transactions sent under title. A failed apply is
// recorded as such, and the Compiler starts over, as the agent's does.
func (s *story) step(title string, change func(r *selectors.Resolver)) {
	s.t.Helper()
	change(s.resolver)
	s.steps++
	fmt.Fprintf(&s.out, "# %d. %s\n", s.steps, title)
	m, changes := s.resolver.Model()
	ifaces := map[netip.Addr]string{}
	for _, p := range m.LocalPods {
		for _, ip := range p.IPs {
			ifaces[ip] = "veth-" + p.Name
		}
	}
	desired, changed := s.compiler.Compile(CompileInput{Table: "nftpolicy", Model: m, Changes: changes, Interfaces: ifaces, PodInterfacePrefix: s.podIfacePrefix})
	sent := len(s.backend.sent)
	_, err := s.applier.Apply(desired, changed)
	if sent == len(s.backend.sent) {
		s.out.WriteString("(no transaction)\n")
	}
	for _, tx := range s.backend.sent[sent:] {
		s.out.WriteString(tx.String())
	}
	if err != nil {
		fmt.Fprintf(&s.out, "(refused: %v)\n", err)
		s.compiler = Compiler{}
	} else if got, want := Render(s.fake.Ruleset()), Render(desired); got != want {
		s.t.Fatalf("step %d (%s): the fake holds\n%s\nwant\n%s", s.steps, title, got, want)
	}
	s.out.WriteString("\n")
}

// TestGoldenTransactions asserts the exact transaction of every step of a story, against
// testdata/transactions-story.golden (rewrite it with -update).
func TestGoldenTransactions(t *testing.T) {
	s := newStory(t)
	s.step("initial sync: the whole table", func(*selectors.Resolver) {})
	s.step("nothing changed", func(*selectors.Resolver) {})
	s.step("pod relabel: client-1 stops being a client", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "client-1", "n2", "198.18.1.30", "app", "other"))
	})
	s.step("pod IP change: remote web-2 moves to 198.18.1.12", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "web-2", "n2", "198.18.1.12", "app", "web"))
	})
	s.step("pod added: web-3 starts on this node", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "web-3", "n1", "198.18.0.13", "app", "web"))
	})
	s.step("pod deleted: web-3 goes", func(r *selectors.Resolver) {
		r.DeletePod("shop", "web-3")
	})
	s.step("policy edit: db-ingress moves to TCP 5433", func(r *selectors.Resolver) {
		r.SetPolicy(dbIngress(5433))
	})
	s.step("namespace relabel: tools is no longer team=tools", func(r *selectors.Resolver) {
		r.SetNamespace(storyNamespace("tools", "none"))
	})
	s.step("a peer set outgrows its size: 63 web pods start on n2 (65 in the set of size 64)", func(r *selectors.Resolver) {
		for i := range 63 {
			r.SetPod(storyPod("shop", fmt.Sprintf("web-n2-%02d", i), "n2", fmt.Sprintf("198.18.2.%d", 10+i), "app", "web"))
		}
	})
	s.fake.FailNext(errors.New("injected failure"))
	s.step("a failed apply: client-1 is a client again", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "client-1", "n2", "198.18.1.30", "app", "client"))
	})
	s.step("after the failure: the whole table is replaced", func(*selectors.Resolver) {})
	checkGolden(t, "transactions-story.golden", s.out.String())
}

// TestGoldenTransactionsFailClosed asserts the transactions of the fail-closed mode against
// testdata/transactions-failclosed.golden: a new local pod's interface and address enter the
// anti-spoofing sets, which the fail-closed rules read, in the transaction that adds its chains.
func TestGoldenTransactionsFailClosed(t *testing.T) {
	s := newStory(t)
	s.podIfacePrefix = "veth-"
	s.step("initial sync: the whole table, with the fail-closed rules", func(*selectors.Resolver) {})
	s.step("pod added: web-3 starts on this node", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "web-3", "n1", "198.18.0.13", "app", "web"))
	})
	s.step("pod added: idle-1 starts on this node, selected by no policy", func(r *selectors.Resolver) {
		r.SetPod(storyPod("shop", "idle-1", "n1", "198.18.0.14", "app", "idle"))
	})
	s.step("pod deleted: web-3 goes", func(r *selectors.Resolver) {
		r.DeletePod("shop", "web-3")
	})
	checkGolden(t, "transactions-failclosed.golden", s.out.String())
}
