package nft

// IP plan of the ClusterNetworkPolicy tests: namespaces x and y (labelled ns: <name>); x/a 198.18.1.1,
// x/b 198.18.1.2 and y/a 198.18.2.1 on node n1, y/b 198.18.2.2 on node n2; y/a and y/b serve the
// named port http on TCP 8080, y/a dns on UDP 53. 198.19.0.1 is outside the cluster. Pods on n1 send
// through veth-<ns>-<name>, n2's pods arrive through fabric0.

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/nftpolicy/nftpolicy/nft/nfttest"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
)

var cnpAddrs = map[string]string{"x/a": "198.18.1.1", "x/b": "198.18.1.2", "y/a": "198.18.2.1", "y/b": "198.18.2.2", "out": "198.19.0.1"}

// cnpWorld is the cluster of the IP plan with the given NetworkPolicy and ClusterNetworkPolicy
// documents (YAML).
func cnpWorld(t *testing.T, docs ...string) *selectors.Snapshot {
	t.Helper()
	s := &selectors.Snapshot{Namespaces: []selectors.Namespace{{Name: "x", Labels: map[string]string{"ns": "x"}}, {Name: "y", Labels: map[string]string{"ns": "y"}}}}
	for _, key := range []string{"x/a", "x/b", "y/a", "y/b"} {
		ns, name, _ := strings.Cut(key, "/")
		p := selectors.Pod{Namespace: ns, Name: name, Node: "n1", Labels: map[string]string{"pod": name}, IPs: []netip.Addr{netip.MustParseAddr(cnpAddrs[key])}, Phase: corev1.PodRunning}
		if ns == "y" {
			p.Ports = []selectors.ContainerPort{{Name: "http", Number: 8080, Protocol: corev1.ProtocolTCP}}
		}
		if key == "y/a" {
			p.Ports = append(p.Ports, selectors.ContainerPort{Name: "dns", Number: 53, Protocol: corev1.ProtocolUDP})
		}
		if key == "y/b" {
			p.Node = "n2"
		}
		s.Pods = append(s.Pods, p)
	}
	for _, doc := range docs {
		if strings.HasPrefix(doc, "kind: NetworkPolicy") {
			np := &networkingv1.NetworkPolicy{}
			if err := yaml.UnmarshalStrict([]byte(doc), np); err != nil {
				t.Fatal(err)
			}
			s.Policies = append(s.Policies, np)
			continue
		}
		cnp := &v1beta1.ClusterNetworkPolicy{}
		if err := yaml.UnmarshalStrict([]byte(doc), cnp); err != nil {
			t.Fatal(err)
		}
		s.ClusterPolicies = append(s.ClusterPolicies, cnp)
	}
	return s
}

// cnpDoc writes a ClusterNetworkPolicy; rules is the flow-style YAML of its ingress or egress.
func cnpDoc(name, tier, priority, subject, rules string) string {
	return "kind: ClusterNetworkPolicy\nmetadata: {name: " + name + "}\nspec: {tier: " + tier + ", priority: " + priority +
		", subject: " + subject + ", " + rules + "}"
}

const (
	npDenyX   = "kind: NetworkPolicy\nmetadata: {namespace: x, name: deny}\nspec: {podSelector: {}}"
	npAllowX  = "kind: NetworkPolicy\nmetadata: {namespace: x, name: allow}\nspec: {podSelector: {}, ingress: [{}]}"
	subjectX  = `{namespaces: {matchLabels: {ns: x}}}`
	subjectY  = `{namespaces: {matchLabels: {ns: "y"}}}`
	subjectXA = `{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}}`
	fromAnyNS = `[{namespaces: {}}]`
)

func ingressRule(action, extra string) string {
	return "ingress: [{action: " + action + ", from: " + fromAnyNS + extra + "}]"
}

type cnpProbe struct {
	src, dst string
	proto    corev1.Protocol
	port     uint16
	want     bool
}

func probeTCP(src, dst string, port uint16, want bool) cnpProbe {
	return cnpProbe{src, dst, corev1.ProtocolTCP, port, want}
}

// TestClusterPolicyTrace traces new connections through the compiled rulesets of both nodes; every
// verdict is checked against the case's expectation and against the oracle's reading of the API.
func TestClusterPolicyTrace(t *testing.T) {
	cases := []struct {
		name   string
		docs   []string
		probes []cnpProbe
	}{
		{"admin deny beats an allowing NetworkPolicy, and drops",
			[]string{npAllowX, cnpDoc("d", "Admin", "1", subjectX, ingressRule("Deny", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false), probeTCP("y/b", "x/b", 80, false), probeTCP("x/a", "y/a", 80, true)}},
		{"admin accept beats an isolating NetworkPolicy",
			[]string{npDenyX, cnpDoc("a", "Admin", "1", subjectX, ingressRule("Accept", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, true), probeTCP("y/b", "x/b", 443, true)}},
		{"admin pass hands over to NetworkPolicy, skipping the rest of the Admin tier",
			[]string{npDenyX, cnpDoc("p", "Admin", "1", subjectX, ingressRule("Pass", "")), cnpDoc("a", "Admin", "2", subjectX, ingressRule("Accept", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false)}},
		{"admin pass without NetworkPolicy hands over to Baseline",
			[]string{cnpDoc("p", "Admin", "1", subjectX, ingressRule("Pass", "")), cnpDoc("b", "Baseline", "1", subjectX, ingressRule("Deny", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false), probeTCP("x/a", "y/a", 80, true)}},
		{"NetworkPolicy overrides a Baseline deny",
			[]string{npAllowX, cnpDoc("b", "Baseline", "1", subjectX, ingressRule("Deny", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, true)}},
		{"NetworkPolicy isolation overrides a Baseline accept",
			[]string{npDenyX, cnpDoc("b", "Baseline", "1", subjectX, ingressRule("Accept", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false)}},
		{"Baseline pass falls through to allowed, skipping the rest of the Baseline tier",
			[]string{cnpDoc("p", "Baseline", "1", subjectX, ingressRule("Pass", "")), cnpDoc("d", "Baseline", "2", subjectX, ingressRule("Deny", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, true)}},
		{"Baseline deny with no NetworkPolicy",
			[]string{cnpDoc("d", "Baseline", "1", subjectX, ingressRule("Deny", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false), probeTCP("x/b", "x/a", 80, false)}},
		{"first match wins: accept 80, then deny all",
			[]string{cnpDoc("o", "Admin", "1", subjectX, `ingress: [{action: Accept, from: `+fromAnyNS+`, protocols: [{tcp: {destinationPort: {number: 80}}}]}, {action: Deny, from: `+fromAnyNS+`}]`)},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, true), probeTCP("y/a", "x/a", 81, false)}},
		{"first match wins: the same rules swapped deny everything",
			[]string{cnpDoc("o", "Admin", "1", subjectX, `ingress: [{action: Deny, from: `+fromAnyNS+`}, {action: Accept, from: `+fromAnyNS+`, protocols: [{tcp: {destinationPort: {number: 80}}}]}]`)},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, false), probeTCP("y/a", "x/a", 81, false)}},
		{"lower priority value first; equal priorities by name",
			[]string{cnpDoc("z", "Admin", "1", subjectX, ingressRule("Deny", "")), cnpDoc("a", "Admin", "5", subjectX, ingressRule("Accept", "")),
				cnpDoc("b", "Admin", "1", subjectXA, ingressRule("Accept", ""))},
			[]cnpProbe{probeTCP("y/a", "x/a", 80, true), probeTCP("y/a", "x/b", 80, false)}},
		{"ingress named port resolves on the subject pod",
			[]string{cnpDoc("named", "Admin", "1", subjectY, `ingress: [{action: Deny, from: `+fromAnyNS+`, protocols: [{destinationNamedPort: http}]}]`)},
			[]cnpProbe{probeTCP("x/a", "y/a", 8080, false), probeTCP("x/a", "y/a", 80, true), probeTCP("x/a", "y/b", 8080, false),
				{"x/a", "y/a", corev1.ProtocolUDP, 8080, true}}},
		{"egress named port resolves on the destination pod",
			[]string{cnpDoc("named", "Admin", "1", subjectX, `egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{destinationNamedPort: dns}]}]`)},
			[]cnpProbe{{"x/a", "y/a", corev1.ProtocolUDP, 53, false}, {"x/a", "y/b", corev1.ProtocolUDP, 53, true}, probeTCP("x/a", "y/a", 53, true)}},
		{"port ranges, per protocol, to networks outside the cluster",
			[]string{cnpDoc("r", "Admin", "1", subjectX, `egress: [{action: Deny, to: [{networks: [198.19.0.0/16]}], protocols: [{tcp: {destinationPort: {range: {start: 8000, end: 8080}}}}]}]`)},
			[]cnpProbe{probeTCP("x/a", "out", 8042, false), probeTCP("x/a", "out", 8081, true), {"x/a", "out", corev1.ProtocolUDP, 8042, true}, probeTCP("x/a", "y/a", 8042, true)}},
		{"networks match pod addresses too; egress accept leaves the destination's ingress to decide",
			[]string{cnpDoc("e", "Admin", "1", subjectX, `egress: [{action: Accept, to: [{networks: [198.18.0.0/16]}]}]`), cnpDoc("d", "Admin", "2", subjectY, ingressRule("Deny", "")),
				"kind: NetworkPolicy\nmetadata: {namespace: x, name: no-egress}\nspec: {podSelector: {}, policyTypes: [Egress]}"},
			[]cnpProbe{probeTCP("x/a", "y/a", 80, false), probeTCP("x/a", "x/b", 80, true), probeTCP("x/a", "out", 80, false)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := cnpWorld(t, tc.docs...)
			nodes := compileNodes(s)
			for _, p := range tc.probes {
				c := oracle.Connection{Src: netip.MustParseAddr(cnpAddrs[p.src]), Dst: netip.MustParseAddr(cnpAddrs[p.dst]), Protocol: p.proto, Port: p.port}
				got, steps := tracedVerdict(s, nodes, c)
				if got != p.want || oracle.Allows(s, c) != p.want {
					t.Errorf("%s -> %s %s/%d: traced allowed=%v, oracle %v, want %v", p.src, p.dst, p.proto, p.port, got, oracle.Allows(s, c), p.want)
					for _, st := range steps {
						t.Logf("  %s[%d]: %s", st.Chain, st.Index, st.Rule)
					}
				}
				if last := steps[len(steps)-1].Rule; !got && !strings.Contains(" "+last+" ", " drop ") {
					t.Errorf("%s -> %s: denied by %q, want a drop", p.src, p.dst, last)
				}
			}
		})
	}
}

// tierWorld has both tiers and a NetworkPolicy: x's pods share their Admin and Baseline chains, y's
// local pod has only a Baseline chain, and x/b is also isolated by a NetworkPolicy.
func tierWorld(t *testing.T) *selectors.Snapshot {
	return cnpWorld(t,
		"kind: NetworkPolicy\nmetadata: {namespace: x, name: web}\nspec: {podSelector: {matchLabels: {pod: b}}, ingress: [{ports: [{port: 80}]}]}",
		cnpDoc("guard", "Admin", "10", subjectX, `ingress: [{action: Pass, from: [{namespaces: {matchLabels: {ns: x}}}]}, {action: Deny, from: `+fromAnyNS+`, protocols: [{tcp: {destinationPort: {number: 22}}}, {udp: {destinationPort: {range: {start: 5000, end: 5100}}}}]}]`),
		cnpDoc("dns", "Admin", "20", subjectX, `egress: [{action: Accept, to: [{pods: {namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {}}}], protocols: [{destinationNamedPort: dns}]}]`),
		cnpDoc("default", "Baseline", "1", `{namespaces: {}}`, ingressRule("Deny", "")),
	)
}

func TestCompileClusterPoliciesGolden(t *testing.T) {
	s := tierWorld(t)
	s.Node = "n1"
	rs := Compile(CompileInput{Table: "nftpolicy", Model: selectors.Resolve(s)})
	checkGolden(t, "cluster-tiers.nft", Render(rs))
	// x/a and x/b share their Admin ingress chain; x/a, x/b and y/a their Baseline one.
	tiers := map[string]int{}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if r.Verdict.Kind == Jump && (strings.HasPrefix(r.Verdict.Chain, adminIngressChainPrefix) || strings.HasPrefix(r.Verdict.Chain, baselineIngressChainPrefix)) {
				tiers[r.Verdict.Chain]++
			}
		}
	}
	var admin, baseline int
	for name, jumps := range tiers {
		if strings.HasPrefix(name, adminIngressChainPrefix) {
			admin += jumps
		} else {
			baseline += jumps
		}
	}
	// x/b is isolated by a NetworkPolicy: its chain skips the Baseline tier.
	if len(tiers) != 2 || admin != 2 || baseline != 2 {
		t.Errorf("tier chain jumps %v, want one Admin chain jumped to twice and one Baseline chain jumped to twice", tiers)
	}
}

// modelChanges names what differs between two Models as a Resolver would: the local pods whose
// addresses, isolations or ClusterNetworkPolicy rules differ, and the sets whose elements do.
func modelChanges(prev, next *selectors.Model) selectors.Changes {
	ch := selectors.Changes{LocalPods: sets.New[string](), AddressSets: sets.New[string](), ServiceSets: sets.New[string]()}
	pods := map[string]selectors.LocalPod{}
	for _, p := range prev.LocalPods {
		pods[p.Key()] = p
	}
	for _, p := range next.LocalPods {
		if old, ok := pods[p.Key()]; !ok || !reflect.DeepEqual(old, p) {
			ch.LocalPods.Insert(p.Key())
		}
		delete(pods, p.Key())
	}
	for key := range pods {
		ch.LocalPods.Insert(key)
	}
	addrs := map[string]selectors.AddressSet{}
	for _, a := range prev.AddressSets {
		addrs[a.ID] = a
	}
	for _, a := range next.AddressSets {
		if old, ok := addrs[a.ID]; !ok || !reflect.DeepEqual(old, a) {
			ch.AddressSets.Insert(a.ID)
		}
		delete(addrs, a.ID)
	}
	for id := range addrs {
		ch.AddressSets.Insert(id)
	}
	svcs := map[string]selectors.ServiceSet{}
	for _, a := range prev.ServiceSets {
		svcs[a.ID] = a
	}
	for _, a := range next.ServiceSets {
		if old, ok := svcs[a.ID]; !ok || !reflect.DeepEqual(old, a) {
			ch.ServiceSets.Insert(a.ID)
		}
		delete(svcs, a.ID)
	}
	for id := range svcs {
		ch.ServiceSets.Insert(id)
	}
	return ch
}

// TestClusterPoliciesCompileIncrementally edits ClusterNetworkPolicies and labels step by step: each
// incremental compile equals a full compile of the same Model, and the fake, applied only the
// changes, holds it.
func TestClusterPoliciesCompileIncrementally(t *testing.T) {
	// tierWorld's ClusterNetworkPolicies are guard, dns, default.
	steps := []func(s *selectors.Snapshot){
		func(s *selectors.Snapshot) { s.ClusterPolicies = nil },                   // the NetworkPolicy alone
		func(*selectors.Snapshot) {},                                              // both tiers added
		func(s *selectors.Snapshot) { s.ClusterPolicies = s.ClusterPolicies[1:] }, // the Admin ingress policy goes
		func(s *selectors.Snapshot) { s.ClusterPolicies[1].Spec.Priority = 30 },   // a priority edit
		func(s *selectors.Snapshot) { s.ClusterPolicies[2].Spec.Ingress[0].Action = "Accept" },
		func(s *selectors.Snapshot) { s.ClusterPolicies[1].Spec.Egress[0].To[0].Pods = nil },  // a peer no longer read: deny all
		func(s *selectors.Snapshot) { s.Pods[2].Labels = map[string]string{"pod": "b"} },      // y/a leaves a peer set
		func(s *selectors.Snapshot) { s.Namespaces[1].Labels = map[string]string{"ns": "z"} }, // y leaves the dns peers
		func(s *selectors.Snapshot) { s.Policies = nil },                                      // x/b is no longer isolated
		func(s *selectors.Snapshot) { s.ClusterPolicies, s.Policies = nil, nil },              // nothing
	}
	var cc Compiler
	f := NewFake("nftpolicy")
	a := NewApplier(f)
	prev := &selectors.Model{Node: "n1"}
	for i, step := range steps {
		s := tierWorld(t)
		step(s)
		s.Node = "n1"
		m := selectors.Resolve(s)
		in := CompileInput{Table: "nftpolicy", Model: m, Changes: modelChanges(prev, m)}
		if i == 0 {
			in.Changes = selectors.FullChanges()
		}
		rs, changed := cc.Compile(in)
		if got, want := Render(rs), Render(Compile(CompileInput{Table: "nftpolicy", Model: m})); got != want {
			t.Fatalf("step %d: incremental compile\n%s\nwant\n%s", i, got, want)
		}
		if _, err := a.Apply(rs, changed); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, want := Render(f.Ruleset()), Render(rs); got != want {
			t.Fatalf("step %d: the fake holds\n%s\nwant\n%s", i, got, want)
		}
		prev = m
	}
}

func compileGuestbookCluster() *Ruleset {
	return Compile(CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookClusterModel(), Interfaces: guestbookInterfaces()})
}

// TestTraceGuestbookCluster traces the tier shapes of nfttest.GuestbookClusterModel, both families.
func TestTraceGuestbookCluster(t *testing.T) {
	rs := compileGuestbookCluster()
	checkGolden(t, "guestbook-cluster.nft", Render(rs))
	fwd := func(iif, src, dst string, proto uint8, port uint16) Packet {
		return Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(dst), Proto: proto, DstPort: port}
	}
	const idleIP, idleIface = "198.18.0.40", "veth-idle"
	cases := []struct {
		name   string
		packet Packet
		want   VerdictKind
	}{
		{"Admin pass from guestbook pods hands redis over to its NetworkPolicy, which admits them",
			fwd(fabricIface, remoteGBIP, redisIP, ProtoTCP, 22), Accept},
		{"Admin deny of TCP 22 from the cluster",
			fwd(fabricIface, busyboxIP, redisIP, ProtoTCP, 22), Drop},
		{"Admin deny of a UDP range from the cluster",
			fwd(fabricIface, busyboxIP, redisIP, ProtoUDP, 5050), Drop},
		{"the failed-closed rule denies everything else, over IPv6 too (its rule has no family)",
			fwd(fabricIface, "fd18::1:30", redisIPv6, ProtoTCP, 6379), Drop},
		{"the failed-closed deny comes after the pass: guestbook pods still reach redis",
			fwd(fabricIface, remoteGBIP, redisIP, ProtoTCP, 6379), Accept},
		{"Admin accept of the named port beats guestbook's egress NetworkPolicy",
			fwd(guestbkIface, guestbookIP, remoteGBIP, ProtoTCP, 3000), Accept},
		{"the Baseline deny does not apply to a pod a NetworkPolicy isolates",
			fwd(fabricIface, busyboxIP, guestbookIP, ProtoTCP, 8000), Drop}, // its own isolation denies
		{"Baseline deny of a TCP range for a pod no NetworkPolicy selects",
			fwd(fabricIface, busyboxIP, idleIP, ProtoTCP, 8042), Drop},
		{"Baseline deny of TCP 9000 (the list's port set)",
			fwd(fabricIface, busyboxIP, idleIP, ProtoTCP, 9000), Drop},
		{"what no tier decides is allowed",
			fwd(fabricIface, busyboxIP, idleIP, ProtoTCP, 8081), Accept},
		{"Admin egress deny to the world",
			fwd(idleIface, idleIP, externalDNS, ProtoUDP, 53), Drop},
		{"Admin egress leaves the rest allowed",
			fwd(idleIface, idleIP, busyboxIP, ProtoUDP, 53), Accept},
		{"replies of accepted connections pass",
			Packet{Hook: HookForward, Iifname: idleIface, Src: addr(idleIP), Dst: addr(busyboxIP), Proto: ProtoTCP, DstPort: 40000, Ct: CtEstablished}, Accept},
	}
	for _, tc := range cases {
		if got := Trace(rs, tc.packet); got.Verdict != tc.want {
			t.Errorf("%s: %s got %s, want %s", tc.name, tc.packet, verdictName(got.Verdict), verdictName(tc.want))
			for _, st := range got.Steps {
				t.Logf("  %s[%d]: %s", st.Chain, st.Index, st.Rule)
			}
		}
	}
}

// TestStaleFlowsSeeClusterPolicies: conntrack cleanup traces the committed ruleset, so a tracked
// connection that a ClusterNetworkPolicy now denies is ended, also for a pod no NetworkPolicy
// selects (its dispatch map entries make it one of the pods whose flows are judged).
func TestStaleFlowsSeeClusterPolicies(t *testing.T) {
	rs := compileGuestbookCluster()
	stale := NewStaleFlows(rs, guestbookInterfaces())
	idle := addr("198.18.0.40")
	for _, tc := range []struct {
		flow Flow
		want bool
	}{
		{Flow{Src: addr(busyboxIP), Dst: idle, Proto: ProtoTCP, DstPort: 8042}, true},        // Baseline deny
		{Flow{Src: addr(busyboxIP), Dst: idle, Proto: ProtoTCP, DstPort: 8081}, false},       // no tier decides
		{Flow{Src: idle, Dst: addr(externalDNS), Proto: ProtoUDP, DstPort: 53}, true},        // Admin egress deny
		{Flow{Src: addr(busyboxIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 22}, true}, // Admin ingress deny
		{Flow{Src: addr(remoteGBIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 22}, false},
	} {
		if got := stale.Denied(tc.flow); got != tc.want {
			t.Errorf("%+v: denied %v, want %v", tc.flow, got, tc.want)
		}
	}
}
