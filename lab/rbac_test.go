package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// TestAgentsRunAsServiceAccount checks that each agent runs with a kubeconfig of its own that
// authenticates as the ServiceAccount config/default gives the DaemonSet, and that the API server
// authorizes that identity with the generated ClusterRole: the agent may list pods but not secrets,
// which the lab's admin may.
func TestAgentsRunAsServiceAccount(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := testOptions(t)
	opts.Nodes = 1
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	id := l.AgentIdentity()
	if id.Namespace != "nftpolicy-system" || id.ServiceAccount != "nftpolicy-agent" || !slices.Equal(id.ClusterRoles, []string{"nftpolicy-manager-role", "nftpolicy-metrics-auth-role"}) {
		t.Errorf("agent identity %+v, want config/default's nftpolicy-system/nftpolicy-agent bound to nftpolicy-manager-role and nftpolicy-metrics-auth-role", id)
	}
	agents := l.State().Agents
	if len(agents) != 1 || agents[0].Kubeconfig != l.AgentKubeconfig("node-1") {
		t.Fatalf("state's agents %+v, want node-1's with kubeconfig %s", agents, l.AgentKubeconfig("node-1"))
	}
	if st, err := os.Stat(agents[0].Kubeconfig); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("agent kubeconfig: %v, mode %v; want a file readable by root only", err, st)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", agents[0].Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CertData != nil || cfg.BearerToken == "" {
		t.Errorf("agent kubeconfig authenticates with a client certificate or without a token")
	}
	agent := kubernetes.NewForConfigOrDie(cfg)

	review, err := agent.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := review.Status.UserInfo.Username; got != id.Username() {
		t.Errorf("the agent's kubeconfig authenticates as %q, want %q", got, id.Username())
	}
	if _, err := agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Errorf("the agent cannot list pods: %v", err)
	}
	if _, err := agent.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent listing secrets: got %v, want Forbidden", err)
	}
	if _, err := l.clientset.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Errorf("the lab's admin cannot list secrets: %v", err)
	}

	// The metrics are served to callers allowed to get /metrics only: not to anonymous ones, nor to
	// the agent's own identity, which lacks the metrics-reader role.
	drain := func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	for _, c := range []struct{ who, token, status string }{
		{"an anonymous caller", "", "401"},
		{"the agent's ServiceAccount", cfg.BearerToken, "403"},
	} {
		if err := scrapeMetricsAs(ctx, agents[0].MetricsAddr, c.token, drain); err == nil || !strings.Contains(err.Error(), c.status) {
			t.Errorf("%s scraping the metrics: %v, want %s", c.who, err, c.status)
		}
	}
	if err := ScrapeMetrics(ctx, agents[0], drain); err != nil {
		t.Errorf("the lab's metrics reader scraping the metrics: %v", err)
	}
}

// TestAgentWithoutPolicyAccessFailsLoudly restarts an agent after removing list and watch of
// NetworkPolicies from the agent's ClusterRole: the agent must say so in its NodeEnforcement
// (Programmed False, reason Forbidden, naming the type, in place of its previous run's True), its
// log, its metrics and its readiness. Once the rule is back it recovers without a restart.
func TestAgentWithoutPolicyAccessFailsLoudly(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := testOptions(t)
	opts.Nodes = 1
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	const nodeName = "node-1"
	waitProgrammed(ctx, t, l, nodeName, metav1.ConditionTrue, policyv1alpha1.ReasonCommitted)

	var role rbacv1.ClusterRole
	if err := l.client.Get(ctx, client.ObjectKey{Name: l.AgentIdentity().ClusterRoles[0]}, &role); err != nil {
		t.Fatal(err)
	}
	full := role.DeepCopy()
	role.Rules = slices.DeleteFunc(slices.Clone(role.Rules), func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "networkpolicies")
	})
	if len(role.Rules) != len(full.Rules)-1 {
		t.Fatalf("the generated role has %d rules on networkpolicies, want 1", len(full.Rules)-len(role.Rules))
	}
	if err := l.client.Update(ctx, &role); err != nil {
		t.Fatal(err)
	}
	if err := l.KillAgent(nodeName); err != nil {
		t.Fatal(err)
	}
	a, err := l.restartAgent(ctx, nodeName)
	if err != nil {
		t.Fatal(err)
	}

	cond := waitProgrammed(ctx, t, l, nodeName, metav1.ConditionFalse, policyv1alpha1.ReasonForbidden)
	t.Logf("Programmed: %s: %s", cond.Reason, cond.Message)
	for _, want := range []string{"v1.NetworkPolicy", `"networkpolicies"`} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("Programmed message %q does not name %s", cond.Message, want)
		}
	}
	if err := a.waitReady(ctx, 2*time.Second); err == nil {
		t.Error("the agent is ready without access to NetworkPolicies")
	}
	if log, _ := os.ReadFile(l.AgentLog(nodeName)); !bytes.Contains(log, []byte("Listing or watching failed")) || !bytes.Contains(log, []byte("v1.NetworkPolicy")) {
		t.Errorf("the agent's log does not report the failing NetworkPolicy watch:\n%s", log)
	}
	metrics := l.State().Agents[0]
	const failing = `nftpolicy_watch_failing{type="v1.NetworkPolicy"} 1`
	if err := ScrapeMetrics(ctx, metrics, func(r io.Reader) error {
		body, err := io.ReadAll(r)
		if err == nil && !bytes.Contains(body, []byte(failing)) {
			err = fmt.Errorf("no %s in the agent's metrics", failing)
		}
		return err
	}); err != nil {
		t.Error(err)
	}

	full.ResourceVersion = role.ResourceVersion
	if err := l.client.Update(ctx, full); err != nil {
		t.Fatal(err)
	}
	if err := a.waitReady(ctx, 90*time.Second); err != nil {
		t.Fatalf("the agent did not recover once its role was restored: %v", err)
	}
	waitProgrammed(ctx, t, l, nodeName, metav1.ConditionTrue, policyv1alpha1.ReasonCommitted)
}

// waitProgrammed waits up to a minute for the node's Programmed condition to have status and reason,
// and returns it.
func waitProgrammed(ctx context.Context, t *testing.T, l *Lab, nodeName string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var last *metav1.Condition
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var ne policyv1alpha1.NodeEnforcement
		if err := l.client.Get(ctx, client.ObjectKey{Name: nodeName}, &ne); err == nil {
			last = meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)
			if last != nil && last.Status == status && last.Reason == reason {
				return *last
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("Programmed of %s is %+v, want %s with reason %s", nodeName, last, status, reason)
	return metav1.Condition{}
}
