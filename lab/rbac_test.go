package lab

import (
	"context"
	"os"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
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
	if id.Namespace != "nftpolicy-system" || id.ServiceAccount != "nftpolicy-agent" || len(id.ClusterRoles) != 1 || id.ClusterRoles[0] != "nftpolicy-manager-role" {
		t.Errorf("agent identity %+v, want config/default's nftpolicy-system/nftpolicy-agent bound to nftpolicy-manager-role", id)
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
}
