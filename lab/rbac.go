package lab

// The lab's agents run with the identity an operator's install gives the DaemonSet: the lab builds
// config/default with kustomize, as `make build-installer` does, applies the objects that make up that
// identity (its namespace, ServiceAccount, ClusterRole and binding), and hands each agent a token of
// that ServiceAccount. A rule missing from the generated ClusterRole then fails in the lab as it would
// in a cluster.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// AgentTokenLifetime is how long an agent's ServiceAccount token is valid. Tokens are not refreshed:
// a lab lives for a test run or a working session, and an agent restarted by the lab gets a new one.
const AgentTokenLifetime = 7 * 24 * time.Hour

// labFieldOwner is the field manager of what the lab applies.
const labFieldOwner = client.FieldOwner("nftpolicy-lab")

// AgentIdentity is the ServiceAccount the DaemonSet runs as and the cluster role bound to it, as
// config/default names them.
type AgentIdentity struct {
	Namespace      string
	ServiceAccount string
	// ClusterRoles are the ClusterRoles bound to the ServiceAccount by the installed bindings.
	ClusterRoles []string
}

// Username is the name the API server authenticates the agent's tokens as.
func (id AgentIdentity) Username() string {
	return "system:serviceaccount:" + id.Namespace + ":" + id.ServiceAccount
}

// identityKinds are the kinds of config/default's objects the lab applies: those that make up the
// agent's identity. The CRD is installed by the control plane from config/crd/bases, and the
// DaemonSet is what the lab stands in for by running the agents itself. Any other kind is an error:
// the lab would not know whether the agent depends on it.
var identityKinds = map[string]bool{
	"Namespace": true, "ServiceAccount": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
}

var skippedKinds = map[string]bool{"CustomResourceDefinition": true, "DaemonSet": true}

// installAgentIdentity builds config/default and applies the objects of the agent's identity.
func (l *Lab) installAgentIdentity(ctx context.Context) error {
	objs, err := renderInstall(filepath.Join(l.opts.RepoRoot, "config", "default"))
	if err != nil {
		return err
	}
	id, err := agentIdentityOf(objs)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if !identityKinds[obj.GetKind()] {
			continue
		}
		if err := l.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), labFieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s from config/default: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	l.identity = id
	l.logf("Agents run as %s (cluster roles %v)", id.Username(), id.ClusterRoles)
	return l.installMetricsReader(ctx, objs)
}

// metricsScraper is the ServiceAccount the lab scrapes the agents' metrics as, bound to
// config/default's metrics-reader ClusterRole as an operator binds Prometheus's: the agents serve
// metrics over HTTPS to authorized callers only, and the lab goes through the same checks.
const metricsScraper = "metrics-scraper"

// installMetricsReader creates the lab's scraper ServiceAccount, binds it to the metrics-reader
// ClusterRole among objs, and requests the token ScrapeMetrics sends.
func (l *Lab) installMetricsReader(ctx context.Context, objs []*unstructured.Unstructured) error {
	var role string
	for _, obj := range objs {
		if obj.GetKind() == "ClusterRole" && strings.HasSuffix(obj.GetName(), "metrics-reader") {
			role = obj.GetName()
		}
	}
	if role == "" {
		return errors.New("config/default has no metrics-reader ClusterRole: the lab could not read the agents' metrics")
	}
	ns := l.identity.Namespace
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: metricsScraper, Namespace: ns}}
	if err := l.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the ServiceAccount %s/%s: %w", ns, metricsScraper, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "nftpolicy-lab-" + metricsScraper},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: metricsScraper}},
	}
	if err := l.client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to the ServiceAccount %s/%s: %w", role, ns, metricsScraper, err)
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(AgentTokenLifetime / time.Second)),
	}}
	tok, err := l.clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, metricsScraper, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token of %s/%s: %w", ns, metricsScraper, err)
	}
	l.metricsToken = tok.Status.Token
	return nil
}

// renderInstall runs kustomize on dir, as `kustomize build dir` does: in its legacy order, which puts
// namespaces before what they hold.
func renderInstall(dir string) ([]*unstructured.Unstructured, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building %s with kustomize: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range resources.Resources() {
		m, err := res.Map()
		if err != nil {
			return nil, fmt.Errorf("reading %s %s from %s: %w", res.GetKind(), res.GetName(), dir, err)
		}
		obj := &unstructured.Unstructured{Object: m}
		if !identityKinds[obj.GetKind()] && !skippedKinds[obj.GetKind()] {
			return nil, fmt.Errorf("%s builds a %s %s, which the lab does not know how to stand in for", dir, obj.GetKind(), obj.GetName())
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// agentIdentityOf finds the DaemonSet's ServiceAccount among the rendered objects and the
// ClusterRoles bound to it.
func agentIdentityOf(objs []*unstructured.Unstructured) (AgentIdentity, error) {
	var id AgentIdentity
	var daemonSets int
	for _, obj := range objs {
		if obj.GetKind() != "DaemonSet" {
			continue
		}
		daemonSets++
		sa, _, err := unstructured.NestedString(obj.Object, "spec", "template", "spec", "serviceAccountName")
		if err != nil || sa == "" {
			return id, fmt.Errorf("DaemonSet %s names no serviceAccountName", obj.GetName())
		}
		id = AgentIdentity{Namespace: obj.GetNamespace(), ServiceAccount: sa}
	}
	if daemonSets != 1 {
		return id, fmt.Errorf("config/default builds %d DaemonSets, want the agent's alone", daemonSets)
	}
	var found bool
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ServiceAccount":
			found = found || (obj.GetNamespace() == id.Namespace && obj.GetName() == id.ServiceAccount)
		case "ClusterRoleBinding":
			if bindsServiceAccount(obj, id) {
				role, _, _ := unstructured.NestedString(obj.Object, "roleRef", "name")
				id.ClusterRoles = append(id.ClusterRoles, role)
			}
		}
	}
	if !found {
		return id, fmt.Errorf("config/default does not create the DaemonSet's ServiceAccount %s/%s", id.Namespace, id.ServiceAccount)
	}
	if len(id.ClusterRoles) == 0 {
		return id, fmt.Errorf("config/default binds no ClusterRole to the ServiceAccount %s/%s", id.Namespace, id.ServiceAccount)
	}
	return id, nil
}

func bindsServiceAccount(binding *unstructured.Unstructured, id AgentIdentity) bool {
	subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	for _, s := range subjects {
		m, ok := s.(map[string]any)
		if ok && m["kind"] == "ServiceAccount" && m["name"] == id.ServiceAccount && m["namespace"] == id.Namespace {
			return true
		}
	}
	return false
}

// AgentIdentity is the ServiceAccount the lab's agents run as.
func (l *Lab) AgentIdentity() AgentIdentity { return l.identity }

// agentKubeconfigPath is where the kubeconfig of a node's agent lives.
func (l *Lab) agentKubeconfigPath(nodeName string) string {
	return filepath.Join(l.state.Dir, "agents", nodeName+".kubeconfig")
}

// writeAgentKubeconfig requests a token of the agent's ServiceAccount and writes a kubeconfig holding
// it, the API server's address and its CA, readable by root only. It returns the file's path.
func (l *Lab) writeAgentKubeconfig(ctx context.Context, nodeName string) (string, error) {
	if l.identity.ServiceAccount == "" {
		return "", errors.New("the agent's identity is not installed")
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(AgentTokenLifetime / time.Second)),
	}}
	tok, err := l.clientset.CoreV1().ServiceAccounts(l.identity.Namespace).CreateToken(ctx, l.identity.ServiceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of %s for the agent of %s: %w", l.identity.Username(), nodeName, err)
	}
	path := l.agentKubeconfigPath(nodeName)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := clientcmd.WriteToFile(tokenKubeconfig(l.restConfig, tok.Status.Token, l.identity.Username()), path); err != nil {
		return "", fmt.Errorf("writing the kubeconfig of the agent of %s: %w", nodeName, err)
	}
	return path, nil
}

// tokenKubeconfig is a kubeconfig for cfg's API server that authenticates with a bearer token.
func tokenKubeconfig(cfg *rest.Config, token, user string) clientcmdapi.Config {
	const name = "lab"
	return clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{name: {
			Server:                   cfg.Host,
			CertificateAuthorityData: cfg.CAData,
		}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{user: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{name: {Cluster: name, AuthInfo: user}},
		CurrentContext: name,
	}
}

// AgentKubeconfig is the path of the kubeconfig the node's agent runs with.
func (l *Lab) AgentKubeconfig(nodeName string) string { return l.agentKubeconfigPath(nodeName) }
