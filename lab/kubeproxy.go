package lab

// One real kube-proxy per node, inside the node's network namespace, programming the node's Service
// rules in the mode the lab was started with, as a DaemonSet of kube-proxy on the host network does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

const (
	kubeProxy = "kube-proxy"
	// proxiesDir, in the state directory, holds the kube-proxies' kubeconfigs.
	proxiesDir = "proxies"
	// proxyHealthAddr and proxyMetricsAddr are on the loopback of each node's namespace, so every
	// node's kube-proxy has the same ones.
	proxyHealthAddr  = "127.0.0.1:10256"
	proxyMetricsAddr = "127.0.0.1:10249"
	// proxySyncTimeout bounds the wait for a kube-proxy's first sync.
	proxySyncTimeout = 60 * time.Second
)

// proxyIdentity is kube-proxy's ServiceAccount, bound to system:node-proxier as kubeadm binds it.
var proxyIdentity = struct{ namespace, serviceAccount, binding, clusterRole string }{
	metav1.NamespaceSystem, "kube-proxy", "nftpolicy-lab:node-proxier", "system:node-proxier",
}

// proxyModeTools are the programs each mode needs on PATH: nsenter puts kube-proxy in the node's
// namespace, modprobe loads IPVS, and kube-proxy runs the rest.
var proxyModeTools = map[string][]string{
	ProxyModeNFTables: {"nsenter", "nft"},
	ProxyModeIPTables: {"nsenter", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"},
	ProxyModeIPVS:     {"nsenter", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore", "ipset", "modprobe"},
}

// proxyProcess is one node's kube-proxy and the relay through which it reaches the API server.
type proxyProcess struct {
	*childProcess
	node  *node
	relay *netlab.Forwarder
}

// proxyModeUsable says why kube-proxy cannot run in mode on this machine, or nil: a kernel without
// IPVS for the ipvs mode, or tools missing from PATH. Start checks it before anything else, so that
// a lab that cannot carry Service traffic fails at once instead of waiting for a kube-proxy.
func proxyModeUsable(mode string) error {
	var missing []string
	for _, tool := range proxyModeTools[mode] {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kube-proxy --proxy-mode=%s needs %s, missing from PATH (hack/setup.sh installs them)", mode, strings.Join(missing, ", "))
	}
	if mode == ProxyModeIPVS {
		return ipvsAvailable()
	}
	return nil
}

// ipvsAvailable loads ip_vs if needed and checks that the kernel then has IPVS.
func ipvsAvailable() error {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return nil
	}
	out, err := exec.Command("modprobe", "ip_vs").CombinedOutput()
	if err == nil {
		if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
			return nil
		}
	}
	detail := strings.TrimSpace(string(out))
	if detail == "" && err != nil {
		detail = err.Error()
	}
	return fmt.Errorf("kube-proxy --proxy-mode=ipvs needs the kernel's IPVS (ip_vs), which this kernel lacks (modprobe ip_vs: %s)", detail)
}

// startProxies runs one kube-proxy per node and waits until each has synced its rules.
func (l *Lab) startProxies(ctx context.Context) error {
	begin := time.Now()
	if err := l.installProxyIdentity(ctx); err != nil {
		return err
	}
	for _, n := range l.nodes {
		p, err := l.startProxy(ctx, n)
		if err != nil {
			return err
		}
		l.proxies = append(l.proxies, p)
	}
	if err := l.state.write(); err != nil {
		return err
	}
	for _, p := range l.proxies {
		if err := p.waitSynced(ctx, l.clusterFamilies()); err != nil {
			return err
		}
	}
	l.logf("kube-proxy (%s mode) synced on %d nodes in %s", l.opts.ProxyMode, len(l.proxies), time.Since(begin).Round(10*time.Millisecond))
	return nil
}

// installProxyIdentity creates kube-proxy's ServiceAccount and binds it to system:node-proxier.
func (l *Lab) installProxyIdentity(ctx context.Context) error {
	id := proxyIdentity
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: id.namespace, Name: id.serviceAccount}}
	if err := l.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating kube-proxy's ServiceAccount: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: id.binding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: id.clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: id.namespace, Name: id.serviceAccount}},
	}
	if err := l.client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding kube-proxy's ServiceAccount to %s: %w", id.clusterRole, err)
	}
	return nil
}

// writeProxyKubeconfig writes a kubeconfig holding a new token of kube-proxy's ServiceAccount and
// returns its path.
func (l *Lab) writeProxyKubeconfig(ctx context.Context, nodeName string) (string, error) {
	id := proxyIdentity
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(AgentTokenLifetime / time.Second)),
	}}
	tok, err := l.clientset.CoreV1().ServiceAccounts(id.namespace).CreateToken(ctx, id.serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for the kube-proxy of %s: %w", nodeName, err)
	}
	path := filepath.Join(l.state.Dir, proxiesDir, nodeName+".kubeconfig")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	user := "system:serviceaccount:" + id.namespace + ":" + id.serviceAccount
	if err := clientcmd.WriteToFile(tokenKubeconfig(l.restConfig, tok.Status.Token, user), path); err != nil {
		return "", fmt.Errorf("writing the kubeconfig of the kube-proxy of %s: %w", nodeName, err)
	}
	return path, nil
}

// startProxy starts the node's kube-proxy in the node's network namespace, reaching the API server
// through a relay on that namespace's loopback. --cluster-cidr names the
// pod ranges, so that pod traffic to a Service keeps its source address; the conntrack settings are
// left to the kernel's defaults, which the agents' tests rely on; health and metrics listen on the
// namespace's loopback.
func (l *Lab) startProxy(ctx context.Context, n *node) (*proxyProcess, error) {
	kubeconfig, err := l.writeProxyKubeconfig(ctx, n.name)
	if err != nil {
		return nil, err
	}
	logPath, err := l.logPath(kubeProxy + "-" + n.name + ".log")
	if err != nil {
		return nil, err
	}
	argv := []string{
		"nsenter", "--net=" + n.net.Path, "--",
		filepath.Join(l.assets, kubeProxy),
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + n.name,
		"--proxy-mode=" + l.opts.ProxyMode,
		"--cluster-cidr=" + prefixList(l.podCIDRs()),
		"--healthz-bind-address=" + proxyHealthAddr,
		"--metrics-bind-address=" + proxyMetricsAddr,
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--v=2",
	}
	apiURL, err := url.Parse(l.restConfig.Host)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's address %q: %w", l.restConfig.Host, err)
	}
	apiAddr, err := netip.ParseAddrPort(apiURL.Host)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's address %q: %w", apiURL.Host, err)
	}
	relay, err := n.net.ForwardTCP(apiAddr, apiURL.Host)
	if err != nil {
		return nil, fmt.Errorf("relaying the API server into %s: %w", n.name, err)
	}
	c, err := startChild("the kube-proxy of "+n.name, logPath, argv)
	if err != nil {
		return nil, errors.Join(err, relay.Close())
	}
	l.state.Proxies = append(l.state.Proxies, ProxyState{
		Node: n.name, Process: c.process(), Log: logPath, Kubeconfig: kubeconfig, HealthAddr: proxyHealthAddr,
	})
	return &proxyProcess{childProcess: c, node: n, relay: relay}, nil
}

// clusterFamilies are the IP families the lab publishes, primary first: those of kube-proxy's health
// status the lab waits for, and of each pod's addresses.
func (l *Lab) clusterFamilies() []corev1.IPFamily {
	var out []corev1.IPFamily
	for _, p := range l.ServiceCIDRs() {
		if p.Addr().Is4() {
			out = append(out, corev1.IPv4Protocol)
		} else {
			out = append(out, corev1.IPv6Protocol)
		}
	}
	return out
}

// proxyHealth is the part of kube-proxy's /healthz answer the lab reads: per family, when its
// proxier last synced, absent until its first sync.
type proxyHealth struct {
	Healthy bool `json:"healthy"`
	Status  map[corev1.IPFamily]struct {
		LastUpdated time.Time `json:"lastUpdated"`
	} `json:"status"`
}

// waitSynced polls the kube-proxy's /healthz, in the node's namespace, until the proxier of each
// family has synced once.
func (p *proxyProcess) waitSynced(ctx context.Context, families []corev1.IPFamily) error {
	ctx, cancel := context.WithTimeout(ctx, proxySyncTimeout)
	defer cancel()
	hc := httpClientIn(p.node.net.Netns)
	healthz := "http://" + proxyHealthAddr + "/healthz"
	var last string
	for {
		synced, why := p.synced(ctx, hc, healthz, families)
		if synced {
			return nil
		}
		last = why
		select {
		case <-p.exited:
			return p.exitedError()
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to sync (%s): %w; see %s", p.name, last, ctx.Err(), p.log.Name())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// synced asks /healthz once; when not synced it says why.
func (p *proxyProcess) synced(ctx context.Context, hc *http.Client, healthz string, families []corev1.IPFamily) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthz, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var h proxyHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return false, fmt.Sprintf("reading /healthz: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !h.Healthy {
		return false, "/healthz answers " + resp.Status
	}
	for _, f := range families {
		if h.Status[f].LastUpdated.IsZero() {
			return false, "no " + string(f) + " sync yet"
		}
	}
	return true, ""
}

// httpClientIn is an HTTP client whose connections are made in ns.
func httpClientIn(ns netlab.Netns) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.Do(func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// stopProxies stops every node's kube-proxy, then their relays to the API server. The rules a
// kube-proxy wrote stay until the node's namespace is removed.
func (l *Lab) stopProxies() error {
	children := make([]*childProcess, len(l.proxies))
	for i, p := range l.proxies {
		children[i] = p.childProcess
	}
	var errs []error
	if err := stopChildren(children); err != nil {
		errs = append(errs, fmt.Errorf("stopping kube-proxy: %w", err))
	}
	for _, p := range l.proxies {
		errs = append(errs, p.relay.Close())
	}
	l.proxies = nil
	return errors.Join(errs...)
}
