package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/explain/plugin"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// explainCluster: a server with a named port, a client its policy admits, an intruder it does not,
// on two nodes so that egress and ingress are answered by different agents.
var explainCluster = scenario.ClusterSpec{Namespaces: []scenario.Namespace{{
	Name: "x", Labels: map[string]string{"ns": "x"},
	Pods: []scenario.Pod{
		{Name: "client", Labels: map[string]string{"app": "client"}},
		{Name: "server", Labels: map[string]string{"app": "server"}, Ports: []scenario.Port{{Name: "http", Port: 8080, Protocol: "TCP"}}},
		{Name: "intruder", Labels: map[string]string{"app": "intruder"}},
	},
}}}

// explainPolicy isolates the server for ingress: clients on its named port http, the pod range but
// the intruder on 7070, and clients on a named port the server does not define.
func explainPolicy(intruder string) *networkingv1.NetworkPolicy {
	http, p7070, admin := intstr.FromString("http"), intstr.FromInt32(7070), intstr.FromString("admin")
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "server-ingress", Namespace: "x"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &http}},
				},
				{
					From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: podCIDRv4.String(), Except: []string{intruder + "/32"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &p7070}},
				},
				{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &admin}},
				},
			},
		},
	}
}

// TestExplain runs `kubectl nftpolicy explain` against a lab: for each case the spec answer and
// both agents' traces of their kernel tables agree, and the spec names the reason; a caller whom
// the agents do not authorize learns nothing from them.
func TestExplain(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := testOptions(t)
	opts.Nodes = 2
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := l.Setup(ctx, explainCluster); err != nil {
		t.Fatal(err)
	}
	intruder, err := l.PodIP("x/intruder", scenario.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyPolicies(ctx, []*networkingv1.NetworkPolicy{explainPolicy(intruder.String())}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitProgrammed(ctx); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, src, dst, port string
		allowed              bool
		reasons              [3]string // of the server's ingress rules, each's reason kinds sorted
	}{
		{"allowed by number", "x/client", "x/server", "8080/tcp", true, [3]string{}},
		{"allowed by the named port", "x/client", "x/server", "http", true, [3]string{}},
		{"denied by port", "x/client", "x/server", "9090/tcp", false, [3]string{"named-port", "port", "named-port"}},
		{"denied by selector", "x/intruder", "x/server", "8080/tcp", false, [3]string{"peer-pod-selector", "ipblock-except port", "named-port peer-pod-selector"}},
		{"denied by an except", "x/intruder", "x/server", "7070/tcp", false, [3]string{"named-port peer-pod-selector", "ipblock-except", "named-port peer-pod-selector"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reports, code, stderr := runExplain(ctx, t, l.Kubeconfig(), c.src, c.dst, c.port)
			want := plugin.ExitAllowed
			if !c.allowed {
				want = plugin.ExitDenied
			}
			if code != want || len(reports) != 1 {
				t.Fatalf("exit %d with %d reports, want %d with 1; stderr: %s", code, len(reports), want, stderr)
			}
			r := reports[0]
			if r.Spec.Allowed != c.allowed || !r.Agrees() || len(r.Dataplane) != 2 {
				t.Fatalf("spec allowed %v, agrees %v, %d dataplane answers; want %v, true, 2:\n%s", r.Spec.Allowed, r.Agrees(), len(r.Dataplane), c.allowed, text(t, r))
			}
			for _, dp := range r.Dataplane {
				if len(dp.Drift) > 0 || len(dp.Path) == 0 {
					t.Errorf("node %s %s: drift %v, path %v", dp.Node, dp.Direction, dp.Drift, dp.Path)
				}
			}
			if r.Dataplane[0].Node == r.Dataplane[1].Node {
				t.Errorf("egress and ingress answered by one node, %s: the cluster should spread the pods", r.Dataplane[0].Node)
			}
			ingress := r.Spec.Ingress
			if c.allowed {
				if ingress.AdmittedBy == nil || ingress.AdmittedBy.Rule != 0 {
					t.Errorf("admitted by %+v, want server-ingress ingress[0]", ingress.AdmittedBy)
				}
				return
			}
			var got [3]string
			for _, rej := range ingress.Rejections {
				var kinds []string
				for _, reason := range rej.Reasons {
					kinds = append(kinds, string(reason.Kind))
				}
				slices.Sort(kinds)
				if rej.Rule >= 0 && rej.Rule < len(got) {
					got[rej.Rule] = strings.Join(slices.Compact(kinds), " ")
				}
			}
			if got != c.reasons {
				t.Errorf("reasons by rule %q, want %q:\n%s", got, c.reasons, text(t, r))
			}
		})
	}

	t.Run("unauthorized", func(t *testing.T) {
		// A ServiceAccount that may read the cluster and port-forward to the agents, but not get
		// /explain: the agents refuse it.
		kubeconfig := serviceAccountKubeconfig(ctx, t, l, "reader", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "services"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list"}},
		})
		reports, code, stderr := runExplain(ctx, t, kubeconfig, "x/client", "x/server", "8080/tcp")
		if code != plugin.ExitError || len(reports) != 0 || !strings.Contains(stderr, "403") {
			t.Errorf("exit %d, %d reports, stderr %q; want exit %d, no report, a 403", code, len(reports), stderr, plugin.ExitError)
		}
		if strings.Contains(stderr, "server-ingress") || strings.Contains(stderr, "chain") {
			t.Errorf("the refusal tells about the table: %q", stderr)
		}
	})

	t.Run("authorized by token", func(t *testing.T) {
		kubeconfig := serviceAccountKubeconfig(ctx, t, l, "auditor", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "services"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list"}},
			{NonResourceURLs: []string{"/explain"}, Verbs: []string{"get"}},
		})
		reports, code, stderr := runExplain(ctx, t, kubeconfig, "x/intruder", "x/server", "8080/tcp")
		if code != plugin.ExitDenied || len(reports) != 1 || len(reports[0].Dataplane) != 2 {
			t.Errorf("exit %d, %d reports; want %d and one report with both nodes' answers; stderr %s", code, len(reports), plugin.ExitDenied, stderr)
		}
	})
}

// runExplain runs the plugin with -o json and returns its reports, exit status and stderr.
func runExplain(ctx context.Context, t *testing.T, kubeconfig string, args ...string) ([]explain.Report, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
	code := plugin.Main(ctx, append([]string{"explain", "--kubeconfig", kubeconfig, "-o", "json"}, args...), streams)
	var reports []explain.Report
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
			t.Fatalf("reading the JSON output: %v\n%s", err, stdout.String())
		}
	}
	return reports, code, stderr.String()
}

func text(t *testing.T, r explain.Report) string {
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// serviceAccountKubeconfig makes a ServiceAccount in namespace x with a ClusterRole of rules, binds it
// to the Role that lets explain's users port-forward to the agents, and writes a kubeconfig with a
// token of it.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, l *Lab, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	cs := l.clientset
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "x"}}
	if _, err := cs.CoreV1().ServiceAccounts("x").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "x"}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-" + name}, Rules: rules}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + name}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agentsBinding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + name, Namespace: l.identity.Namespace}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "nftpolicy-explain-agents"}}
	if _, err := cs.RbacV1().RoleBindings(l.identity.Namespace).Create(ctx, agentsBinding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts("x").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(tokenKubeconfig(l.restConfig, tok.Status.Token, name), path); err != nil {
		t.Fatal(err)
	}
	return path
}
