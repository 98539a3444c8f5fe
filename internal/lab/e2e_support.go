package lab

// What the conformance suite needs beyond the scenario runner: pods that come and go while a cluster
// is up, an address handed from a deleted pod to a new one, and an agent that dies and comes back.
// The pod methods are safe for concurrent use like the scenario.Cluster ones; KillAgent and
// RestartAgent must not run concurrently with each other or with Close.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/internal/netlab"
	"github.com/nftpolicy/nftpolicy/internal/scenario"
)

// CachedAssets returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS or the
// newest complete version in the setup cache. Unlike Start it never builds them, so a test can skip
// at once when they are missing.
func CachedAssets() (string, error) {
	opts := Options{AssetsDir: os.Getenv("KUBEBUILDER_ASSETS")}
	if opts.AssetsDir == "" {
		dirs, _ := filepath.Glob(filepath.Join(DefaultCacheDir, "*", "kube-apiserver"))
		if len(dirs) == 0 {
			return "", fmt.Errorf("no kube-apiserver in %s: run hack/build-apiserver.sh or set KUBEBUILDER_ASSETS", DefaultCacheDir)
		}
		opts.AssetsDir = filepath.Dir(dirs[len(dirs)-1])
	}
	return findAssets(context.Background(), opts)
}

// NodeNames lists the lab's nodes in order.
func (l *Lab) NodeNames() []string {
	names := make([]string, len(l.nodes))
	for i, n := range l.nodes {
		names[i] = n.name
	}
	return names
}

// NodeNetns is the path of the node's network namespace, where its agent programs its table.
func (l *Lab) NodeNetns(nodeName string) (string, error) {
	n, err := l.node(nodeName)
	if err != nil {
		return "", err
	}
	return n.net.Path, nil
}

// NodeOf names the node a pod ("namespace/name") runs on.
func (l *Lab) NodeOf(pod string) (string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p, ok := l.pods[pod]
	if !ok {
		return "", fmt.Errorf("no pod %s in the lab", pod)
	}
	return p.node.name, nil
}

func (l *Lab) node(name string) (*node, error) {
	for _, n := range l.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s in the lab", name)
}

// AddPod starts one more pod in an existing namespace of the current cluster, on the named node, as
// a kubelet would: network namespace, servers, Pod object and running status. It returns once the
// pod is Running with its addresses; WaitProgrammed waits for the agents.
func (l *Lab) AddPod(ctx context.Context, namespace string, spec scenario.Pod, nodeName string) error {
	n, err := l.node(nodeName)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addPodLocked(ctx, n, namespace, spec)
}

func (l *Lab) addPodLocked(ctx context.Context, n *node, namespace string, spec scenario.Pod) error {
	ref := namespace + "/" + spec.Name
	if _, ok := l.pods[ref]; ok {
		return fmt.Errorf("pod %s already runs in the lab", ref)
	}
	p, err := l.startPod(ctx, n, namespace, spec)
	if p != nil {
		l.pods[ref] = p
	}
	return err
}

// AddPodReusingIP starts a pod like AddPod on the node of a pod deleted before with DeletePod, and
// makes it receive that pod's addresses (the IPv4 address ip4 and its IPv6 twin). A node hands out
// the addresses of removed pods first come, first served, so older free addresses are taken by
// placeholder namespaces until ip4 comes up, and given back after.
func (l *Lab) AddPodReusingIP(ctx context.Context, namespace string, spec scenario.Pod, nodeName string, ip4 netip.Addr) (err error) {
	n, err := l.node(nodeName)
	if err != nil {
		return err
	}
	ref := namespace + "/" + spec.Name
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pods[ref]; ok {
		return fmt.Errorf("pod %s already runs in the lab", ref)
	}
	var placeholders []*netlab.Pod
	defer func() {
		for _, p := range placeholders {
			err = errors.Join(err, n.net.RemovePod(p))
		}
	}()
	name := namespace + "." + spec.Name
	for try := range 255 {
		if try > 0 {
			name = fmt.Sprintf("%s.%s.%d", namespace, spec.Name, try)
		}
		netPod, addErr := n.net.AddPod(name)
		if addErr != nil {
			return fmt.Errorf("looking for the free address %v on %s: %w", ip4, nodeName, addErr)
		}
		if netPod.IPv4 != ip4 {
			placeholders = append(placeholders, netPod)
			continue
		}
		p, err := l.runPod(ctx, n, netPod, namespace, spec)
		if p != nil {
			l.pods[ref] = p
		}
		return err
	}
	return fmt.Errorf("the address %v is not free on %s", ip4, nodeName)
}

// DeletePod deletes a pod of the current cluster as a kubelet confirming the deletion would: the Pod
// object goes at once, then its servers and network namespace, whose addresses the node reuses.
func (l *Lab) DeletePod(ctx context.Context, ref string) error {
	ns, name, err := splitRef(ref)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pods[ref]
	if !ok {
		return fmt.Errorf("no pod %s in the lab", ref)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := l.client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pod %s: %w", ref, err)
	}
	delete(l.pods, ref)
	return l.removePod(p)
}

// WaitProgrammed waits until every node's agent reports its table Programmed for exactly the lab's
// pods on that node.
func (l *Lab) WaitProgrammed(ctx context.Context) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.waitSynced(ctx)
}

// KillAgent kills the node's agent with SIGKILL, as a crash or an OOM kill would: it gets no chance
// to touch its table.
func (l *Lab) KillAgent(nodeName string) error {
	i := slices.IndexFunc(l.agents, func(a *agentProcess) bool { return a.node.name == nodeName })
	if i < 0 {
		return fmt.Errorf("no agent runs on %s", nodeName)
	}
	a := l.agents[i]
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing the agent of %s: %w", nodeName, err)
	}
	select {
	case <-a.exited:
	case <-time.After(agentStopTimeout):
		return fmt.Errorf("the agent of %s did not exit after SIGKILL", nodeName)
	}
	a.log.Close()
	l.agents = slices.Delete(l.agents, i, i+1)
	l.state.Agents = slices.DeleteFunc(l.state.Agents, func(s AgentState) bool { return s.Node == nodeName })
	return l.state.write()
}

// AgentRunning reports whether the node has a running agent.
func (l *Lab) AgentRunning(nodeName string) bool {
	return slices.ContainsFunc(l.agents, func(a *agentProcess) bool { return a.node.name == nodeName })
}

// RestartAgent starts a new agent on a node whose agent was killed and returns once it committed its
// first sync. The log of the killed agent is kept beside the new one's.
func (l *Lab) RestartAgent(ctx context.Context, nodeName string) error {
	if l.AgentRunning(nodeName) {
		return fmt.Errorf("the agent of %s still runs", nodeName)
	}
	n, err := l.node(nodeName)
	if err != nil {
		return err
	}
	logDir := filepath.Join(l.state.Dir, "logs")
	old := filepath.Join(logDir, "agent-"+n.name+".log")
	if err := os.Rename(old, fmt.Sprintf("%s.%d", old, time.Now().UnixNano())); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("keeping the log of the killed agent: %w", err)
	}
	a, err := l.startAgent(n, logDir)
	if err != nil {
		return err
	}
	l.agents = append(l.agents, a)
	if err := l.state.write(); err != nil {
		return err
	}
	return a.waitReady(ctx, agentReadyTimeout)
}

// AgentLog is the path of the log of the node's current agent.
func (l *Lab) AgentLog(nodeName string) string {
	return filepath.Join(l.state.Dir, "logs", "agent-"+nodeName+".log")
}
