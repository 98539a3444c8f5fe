package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/droplog"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// dropLogCluster is namespace x of the default cluster: Setup spreads its pods over two nodes, a
// and c on node-1, b on node-2.
var dropLogCluster = scenario.ClusterSpec{Namespaces: []scenario.Namespace{scenario.DefaultCluster().Namespaces[0]}}

// bFromA isolates x/b for ingress, admitting x/a on 80/TCP.
func bFromA() *networkingv1.NetworkPolicy {
	tcp, port := corev1.ProtocolTCP, intstr.FromInt32(80)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "b-from-a", Namespace: "x"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "b"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// TestDropLogWalkthrough is the README's drop logging example on a dual-stack lab with the default
// drop log level (namespace): x/b on node-2 isolated by b-from-a, namespace x annotated deny, a
// denied connection from x/c on node-1 over each family gives one line of node-2's drop log, read
// with `nftpolicy-lab droplog`, naming both pods (x/c a peer on another node); an allowed connection
// from x/a gives none.
func TestDropLogWalkthrough(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := testOptions(t)
	opts.IPFamily = FamilyDual
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := l.Setup(ctx, dropLogCluster); err != nil {
		t.Fatal(err)
	}
	for pod, want := range map[string]string{"x/a": "node-1", "x/b": "node-2", "x/c": "node-1"} {
		if node, err := l.NodeOf(pod); err != nil || node != want {
			t.Fatalf("%s on %q (%v), want %s", pod, node, err, want)
		}
	}
	if err := l.ApplyPolicies(ctx, []*networkingv1.NetworkPolicy{bFromA()}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitProgrammed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkUp(); err != nil {
		t.Fatal(err)
	}
	if lines := readDropLog(t, l, "node-2"); len(lines) != 0 {
		t.Fatalf("lines before any namespace is annotated: %+v", lines)
	}

	// kubectl annotate namespace x nftpolicy.io/log=deny
	ns := &corev1.Namespace{}
	if err := l.Client().Get(ctx, client.ObjectKey{Name: "x"}, ns); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ns.DeepCopy())
	ns.Annotations = map[string]string{"nftpolicy.io/log": "deny"}
	if err := l.Client().Patch(ctx, ns, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error { return logRuleProgrammed(l, "node-2") }, "node-2 programming the log rule of x/b")

	var seen int
	for _, family := range []scenario.Family{scenario.IPv4, scenario.IPv6} {
		src, dst := podIP(t, l, "x/c", family), podIP(t, l, "x/b", family)
		if ok, err := l.Probe(ctx, "x/c", "x/b", 80, scenario.ProtocolTCP, family); err != nil || ok {
			t.Fatalf("x/c -> x/b 80/TCP over %s: allowed %v (%v), want blocked", family, ok, err)
		}
		lines := waitDropLines(t, l, "node-2", seen+1)
		if len(lines) != seen+1 {
			t.Fatalf("over %s: %d lines, want 1 more than %d: %+v", family, len(lines), seen, lines)
		}
		e := lines[seen]
		seen = len(lines)
		if e.Node != "node-2" || e.Direction != "ingress" || e.Verdict != droplog.VerdictDrop || e.Reason != droplog.ReasonDefaultDeny ||
			e.Pod != "x/b" || !slices.Equal(e.Policies, []string{"x/b-from-a"}) || e.Protocol != "tcp" {
			t.Errorf("over %s: line %+v, want node-2 ingress drop default-deny of x/b by x/b-from-a, tcp", family, e)
		}
		if e.Src.IP != src || e.Src.Namespace != "x" || e.Src.Pod != "c" {
			t.Errorf("over %s: source %+v, want x/c at %s", family, e.Src, src)
		}
		if e.Dst.IP != dst || e.Dst.Port != 80 || e.Dst.Namespace != "x" || e.Dst.Pod != "b" {
			t.Errorf("over %s: destination %+v, want x/b at %s port 80", family, e.Dst, dst)
		}
	}

	// The allowed connection, then a denied one to another port: the denied one's line is the only
	// new one, and a line of the allowed connection would come before it.
	if ok, err := l.Probe(ctx, "x/a", "x/b", 80, scenario.ProtocolTCP, scenario.IPv4); err != nil || !ok {
		t.Fatalf("x/a -> x/b 80/TCP: allowed %v (%v), want allowed", ok, err)
	}
	if ok, err := l.Probe(ctx, "x/c", "x/b", 81, scenario.ProtocolTCP, scenario.IPv4); err != nil || ok {
		t.Fatalf("x/c -> x/b 81/TCP: allowed %v (%v), want blocked", ok, err)
	}
	lines := waitDropLines(t, l, "node-2", seen+1)
	if len(lines) != seen+1 || lines[seen].Src.Pod != "c" || lines[seen].Dst.Port != 81 {
		t.Errorf("after an allowed and a denied connection: %d lines, want %d, the last x/c -> x/b port 81: %+v", len(lines), seen+1, lines[seen:])
	}
	if lines := readDropLog(t, l, "node-1"); len(lines) != 0 {
		t.Errorf("node-1, which isolates none of x's pods, logged %+v", lines)
	}
	seen = len(lines)
	// Audit mode: kubectl annotate networkpolicy -n x b-from-a nftpolicy.io/mode=audit. x/c now
	// reaches x/b, and node-2 logs it as a connection b-from-a would drop.
	np := &networkingv1.NetworkPolicy{}
	if err := l.Client().Get(ctx, client.ObjectKey{Namespace: "x", Name: "b-from-a"}, np); err != nil {
		t.Fatal(err)
	}
	npPatch := client.MergeFrom(np.DeepCopy())
	np.Annotations = map[string]string{"nftpolicy.io/mode": "audit"}
	if err := l.Client().Patch(ctx, np, npPatch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if ok, err := l.Probe(ctx, "x/c", "x/b", 80, scenario.ProtocolTCP, scenario.IPv4); err != nil || !ok {
			return fmt.Errorf("x/c -> x/b 80/TCP: allowed %v (%w)", ok, err)
		}
		return nil
	}, "node-2 no longer enforcing the audited b-from-a")
	// The probes made before node-2 stopped enforcing it were drops: the audit's line is the one
	// whose verdict says so.
	var e droplog.Entry
	eventually(t, 15*time.Second, func() error {
		for _, line := range readDropLog(t, l, "node-2")[seen:] {
			if line.Verdict == "would-drop" {
				e = line
				return nil
			}
		}
		return fmt.Errorf("no would-drop line yet")
	}, "waiting for the audit's line in the drop log of node-2")
	t.Logf("audit line: %s", mustJSON(t, e))
	if e.Verdict != "would-drop" || e.Reason != droplog.ReasonAudit || e.Pod != "x/b" || !slices.Equal(e.Policies, []string{"x/b-from-a"}) ||
		e.Src.Pod != "c" || e.Dst.Port != 80 {
		t.Errorf("audit line %+v, want x/c -> x/b port 80 as a would-drop of x/b by x/b-from-a", e)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readDropLog runs `nftpolicy-lab droplog --node node` and reads its lines.
func readDropLog(t *testing.T, l *Lab, node string) []droplog.Entry {
	t.Helper()
	cmd := exec.Command(labBinary, "droplog", "--name", l.Name(), "--node", node)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nftpolicy-lab droplog: %v: %s", err, stderr.String())
	}
	var entries []droplog.Entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e droplog.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries
}

// waitDropLines waits until node's drop log has at least n lines (a flow's line is written once its
// window ends) and returns them.
func waitDropLines(t *testing.T, l *Lab, node string, n int) []droplog.Entry {
	t.Helper()
	var lines []droplog.Entry
	eventually(t, 15*time.Second, func() error {
		if lines = readDropLog(t, l, node); len(lines) < n {
			return fmt.Errorf("%d lines", len(lines))
		}
		return nil
	}, "waiting for %d lines in the drop log of %s", n, node)
	return lines
}

// logRuleProgrammed checks that node's table logs before a drop.
func logRuleProgrammed(l *Lab, node string) error {
	netns, err := l.NodeNetns(node)
	if err != nil {
		return err
	}
	out, err := exec.Command("nsenter", "--net="+netns, "nft", "list", "table", "inet", "nftpolicy").CombinedOutput()
	if err != nil {
		return fmt.Errorf("listing the table: %w: %s", err, out)
	}
	if !strings.Contains(string(out), "log prefix") {
		return fmt.Errorf("no log rule yet")
	}
	return nil
}

func podIP(t *testing.T, l *Lab, pod string, family scenario.Family) netip.Addr {
	t.Helper()
	ip, err := l.PodIP(pod, family)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// A line is copied once it is complete; a file not created yet has none.
func TestLineTailCopiesCompleteLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "droplog.jsonl")
	tail := &lineTail{path: path}
	var out bytes.Buffer
	step := func(write, want string) {
		t.Helper()
		if write != "" {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(write); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		out.Reset()
		if err := tail.copyLines(&out); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("after writing %q: copied %q, want %q", write, out.String(), want)
		}
	}
	step("", "")
	step("{\"a\":1}\n{\"b\"", "{\"a\":1}\n")
	step("", "")
	step(":2}\n", "{\"b\":2}\n")
}
