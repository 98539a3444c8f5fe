package baselines

// IP plan of the tests:
//
//	10.0.0.1, 10.0.0.2   local pods a/x (isolated for ingress and egress) and a/y (not isolated)
//	10.0.1.0/24          peer pods
//	172.16.0.0/20        an ipBlock; 172.16.0.64-172.16.0.127 is its except

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func one(s string) selectors.AddrRange { return selectors.AddrRange{From: addr(s), To: addr(s)} }

// testModel: pod a/x allows ingress from two peer pods on TCP 80 and 9000-9099, from the ipBlock on
// every port, and egress to the named port "http" of one peer.
func testModel() *selectors.Model {
	ref := selectors.PolicyRef{Namespace: "a", Name: "p"}
	return &selectors.Model{
		Node: "n1",
		LocalPods: []selectors.LocalPod{
			{Namespace: "a", Name: "x", IPs: []netip.Addr{addr("10.0.0.1")},
				Ingress: &selectors.Isolation{Policies: []selectors.PolicyRef{ref}, Rules: []selectors.Rule{
					{Policy: ref, Index: 0, Peers: "pods", Ports: []selectors.PortRange{{Protocol: corev1.ProtocolTCP, First: 80, Last: 80}, {Protocol: corev1.ProtocolTCP, First: 9000, Last: 9099}}},
					{Policy: ref, Index: 1, Peers: "block", AllPorts: true},
				}},
				Egress: &selectors.Isolation{Policies: []selectors.PolicyRef{ref}, Rules: []selectors.Rule{
					{Policy: ref, Index: 0, Peers: "pods", NamedPorts: []string{"http"}},
				}},
			},
			{Namespace: "a", Name: "y", IPs: []netip.Addr{addr("10.0.0.2")}},
		},
		AddressSets: []selectors.AddressSet{
			{ID: "block", Ranges: []selectors.AddrRange{
				{From: addr("172.16.0.0"), To: addr("172.16.0.63")},
				{From: addr("172.16.0.128"), To: addr("172.16.15.255")},
			}},
			{ID: "pods", Ranges: []selectors.AddrRange{one("10.0.1.1"), one("10.0.1.2")}},
		},
		ServiceSets: []selectors.ServiceSet{
			{ID: "http", Services: []selectors.Service{{Addr: addr("10.0.1.1"), Protocol: corev1.ProtocolTCP, Port: 8080}}},
		},
	}
}

func TestNaiveLayout(t *testing.T) {
	n, err := NaiveLayout(testModel())
	if err != nil {
		t.Fatal(err)
	}
	var ingress, egress []string
	for _, r := range n.Ingress {
		ingress = append(ingress, r.String())
	}
	for _, r := range n.Egress {
		egress = append(egress, r.String())
	}
	wantIngress := []string{
		// 2 peers x 2 port items, then 2 ranges x every port, then the drop.
		"ip daddr 10.0.0.1 ip saddr 10.0.1.1 meta l4proto tcp th dport 80 accept",
		"ip daddr 10.0.0.1 ip saddr 10.0.1.1 meta l4proto tcp th dport 9000-9099 accept",
		"ip daddr 10.0.0.1 ip saddr 10.0.1.2 meta l4proto tcp th dport 80 accept",
		"ip daddr 10.0.0.1 ip saddr 10.0.1.2 meta l4proto tcp th dport 9000-9099 accept",
		"ip daddr 10.0.0.1 ip saddr 172.16.0.0-172.16.0.63 accept",
		"ip daddr 10.0.0.1 ip saddr 172.16.0.128-172.16.15.255 accept",
		"ip daddr 10.0.0.1 drop",
	}
	wantEgress := []string{
		"ip saddr 10.0.0.1 ip daddr 10.0.1.1 meta l4proto tcp th dport 8080 accept",
		"ip saddr 10.0.0.1 drop",
	}
	if strings.Join(ingress, "\n") != strings.Join(wantIngress, "\n") {
		t.Errorf("ingress rules:\n%s\nwant:\n%s", strings.Join(ingress, "\n"), strings.Join(wantIngress, "\n"))
	}
	if strings.Join(egress, "\n") != strings.Join(wantEgress, "\n") {
		t.Errorf("egress rules:\n%s\nwant:\n%s", strings.Join(egress, "\n"), strings.Join(wantEgress, "\n"))
	}
	if got, want := n.Rules(), 9+naiveFixedRules; got != want {
		t.Errorf("Rules() = %d, want %d", got, want)
	}
	script := n.Render()
	for _, want := range []string{
		"add table inet naive-baseline\ndelete table inet naive-baseline\nadd table inet naive-baseline\n",
		"add rule inet naive-baseline ingress ct state established,related accept\n",
		"add rule inet naive-baseline ingress ip daddr 10.0.0.1 drop\n",
		"add rule inet naive-baseline egress-input jump egress\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if got := strings.Count(script, "add rule "); got != n.Rules() {
		t.Errorf("script has %d rules, Rules() says %d", got, n.Rules())
	}
}

func TestBaselinesRejectIPv6(t *testing.T) {
	m := testModel()
	m.LocalPods[0].IPs = append(m.LocalPods[0].IPs, addr("fd00::1"))
	if _, err := NaiveLayout(m); err == nil {
		t.Error("baseline B accepted an IPv6 pod")
	}
	if _, err := IPTablesLayout(m); err == nil {
		t.Error("baseline C accepted an IPv6 pod")
	}
}

func TestIPTablesLayout(t *testing.T) {
	c, err := IPTablesLayout(testModel())
	if err != nil {
		t.Fatal(err)
	}
	in, eg := hashedName(podInPrefix, "a/x", 28), hashedName(podEgPrefix, "a/x", 28)
	pods, block, svc := hashedName(peerPrefix, "pods", 31), hashedName(peerPrefix, "block", 31), hashedName(svcPrefix, "http", 31)
	want := strings.Join([]string{
		"*filter",
		":INPUT ACCEPT [0:0]",
		":FORWARD ACCEPT [0:0]",
		":OUTPUT ACCEPT [0:0]",
		":KUBE-ROUTER-FORWARD - [0:0]",
		":KUBE-ROUTER-INPUT - [0:0]",
		":" + eg + " - [0:0]",
		":" + in + " - [0:0]",
		"-A FORWARD -j KUBE-ROUTER-FORWARD",
		"-A INPUT -j KUBE-ROUTER-INPUT",
		"-A KUBE-ROUTER-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A KUBE-ROUTER-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A KUBE-ROUTER-FORWARD -s 10.0.0.1/32 -j " + eg,
		"-A KUBE-ROUTER-INPUT -s 10.0.0.1/32 -j " + eg,
		"-A KUBE-ROUTER-FORWARD -d 10.0.0.1/32 -j " + in,
		"-A " + eg + " -m comment --comment \"a/p egress[0]\" -m set --match-set " + svc + " dst,dst -j RETURN",
		"-A " + eg + " -j DROP",
		"-A " + in + " -m comment --comment \"a/p ingress[0]\" -m set --match-set " + pods + " src -p tcp -m multiport --dports 80,9000:9099 -j RETURN",
		"-A " + in + " -m comment --comment \"a/p ingress[1]\" -m set --match-set " + block + " src -j RETURN",
		"-A " + in + " -j DROP",
		"COMMIT",
	}, "\n") + "\n"
	if got := c.FilterRestore(); got != want {
		t.Errorf("iptables-restore input:\n%s\nwant:\n%s", got, want)
	}
	if c.Rules != strings.Count(want, "\n-A ") {
		t.Errorf("Rules = %d, want %d", c.Rules, strings.Count(want, "\n-A "))
	}
	sets := map[string]IPSet{}
	for _, s := range c.Sets {
		sets[s.Name] = s
	}
	if s := sets[pods]; s.Type != "hash:ip" || strings.Join(s.Entries, " ") != "10.0.1.1 10.0.1.2" {
		t.Errorf("pod peer set: %+v", s)
	}
	// 172.16.0.0-63 is one /26; 172.16.0.128-172.16.15.255 is .0.128/25, .1.0/24, .2.0/23, .4.0/22, .8.0/21.
	if s := sets[block]; s.Type != "hash:net" || strings.Join(s.Entries, " ") != "172.16.0.0/26 172.16.0.128/25 172.16.1.0/24 172.16.2.0/23 172.16.4.0/22 172.16.8.0/21" {
		t.Errorf("ipBlock set: %+v", s)
	}
	if s := sets[svc]; s.Type != "hash:ip,port" || strings.Join(s.Entries, " ") != "10.0.1.1,tcp:8080" {
		t.Errorf("named port set: %+v", s)
	}
	if c.Elements() != 9 {
		t.Errorf("Elements() = %d, want 9", c.Elements())
	}
	restore := c.IPSetRestore()
	tmp := hashedName(tmpPrefix, "hash:ip", 31)
	for _, want := range []string{
		"create " + tmp + " hash:ip family inet hashsize 1024 maxelem 1048576 -exist\nflush " + tmp + "\nadd " + tmp + " 10.0.1.1\nadd " + tmp + " 10.0.1.2\n",
		"swap " + tmp + " " + pods + "\n",
		"destroy " + tmp + "\n",
	} {
		if !strings.Contains(restore, want) {
			t.Errorf("ipset restore input lacks %q:\n%s", want, restore)
		}
	}
	previous := &IPTables{Sets: append(c.Sets, IPSet{Name: "KUBE-PEER-GONE"})}
	if got := c.DestroyRestore(previous); got != "destroy KUBE-PEER-GONE\n" {
		t.Errorf("DestroyRestore = %q", got)
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"10.0.0.0", "10.0.0.0", "10.0.0.0/32"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"10.0.0.1", "10.0.0.6", "10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32"},
		{"11.0.0.0", "172.15.255.255", "11.0.0.0/8 12.0.0.0/6 16.0.0.0/4 32.0.0.0/3 64.0.0.0/2 128.0.0.0/3 160.0.0.0/5 168.0.0.0/6 172.0.0.0/12"},
	} {
		var got []string
		for _, p := range rangePrefixes(addr(tc.from), addr(tc.to)) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s-%s: got %s, want %s", tc.from, tc.to, strings.Join(got, " "), tc.want)
		}
	}
}

func TestHashedNamesFitKernelLimits(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		limit  int
	}{{podInPrefix, 28}, {podEgPrefix, 28}, {peerPrefix, 31}, {svcPrefix, 31}, {tmpPrefix, 31}} {
		if n := hashedName(tc.prefix, "some/long/key", tc.limit); len(n) != tc.limit {
			t.Errorf("%s: %q is %d characters, want %d", tc.prefix, n, len(n), tc.limit)
		}
	}
}
