package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nftpolicy/nftpolicy/explain/plugin"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// The guestbook tutorial: redis behind a policy that admits only the guestbook frontend.
const (
	redisPort        = 6379
	redisPolicyFile  = "config/samples/networking_v1_networkpolicy_redis.yaml"
	demoConvergeWait = 30 * time.Second
)

// demoServicePrefix heads a matrix column that probes a Service's ClusterIP instead of a pod.
const demoServicePrefix = "svc/"

var (
	// demoRedis are the destinations of the demo's matrix: the redis pods and redis-master's Service,
	// the way the tutorial's frontends reach it.
	demoRedis   = []string{"default/redis-master", "default/redis-slave-1", "default/redis-slave-2", demoServicePrefix + "redis-master"}
	demoClients = []string{"default/busybox", "default/guestbook-1", "default/guestbook-2", "default/guestbook-3", "other/guestbook"}
	// demoBlocked are the clients the policy shuts out: no app=guestbook label, or another namespace.
	demoBlocked = map[string]string{
		"default/busybox": "it is not labelled app=guestbook",
		"other/guestbook": "it is labelled app=guestbook but lives in namespace other, and a podSelector only selects pods of the policy's own namespace",
	}
)

// guestbookCluster is the cluster of the tutorial (the pods of shared/scenarios/guestbook-redis.yaml)
// with the tutorial's Services: redis-master and redis-slave on 6379, and frontend on port 80,
// forwarded to the frontends' port by its name, as the guestbook's containers name it.
func guestbookCluster() scenario.ClusterSpec {
	frontend := []scenario.Port{{Name: "http-server", Port: 3000, Protocol: scenario.ProtocolTCP}}
	redis := []scenario.Port{{Name: "redis-server", Port: redisPort, Protocol: scenario.ProtocolTCP}}
	redisService := []scenario.ServicePort{{Port: redisPort, TargetPort: intstr.FromInt32(redisPort), Protocol: scenario.ProtocolTCP}}
	return scenario.ClusterSpec{Namespaces: []scenario.Namespace{
		{Name: "default", Services: []scenario.Service{
			{Name: "redis-master", Selector: map[string]string{"app": "redis", "role": "master"}, Ports: redisService},
			{Name: "redis-slave", Selector: map[string]string{"app": "redis", "role": "slave"}, Ports: redisService},
			{Name: "frontend", Selector: map[string]string{"app": "guestbook"}, Ports: []scenario.ServicePort{
				{Port: 80, TargetPort: intstr.FromString("http-server"), Protocol: scenario.ProtocolTCP},
			}},
		}, Pods: []scenario.Pod{
			{Name: "redis-master", Labels: map[string]string{"app": "redis", "role": "master"}, Ports: redis},
			{Name: "redis-slave-1", Labels: map[string]string{"app": "redis", "role": "slave"}, Ports: redis},
			{Name: "redis-slave-2", Labels: map[string]string{"app": "redis", "role": "slave"}, Ports: redis},
			{Name: "guestbook-1", Labels: map[string]string{"app": "guestbook"}, Ports: frontend},
			{Name: "guestbook-2", Labels: map[string]string{"app": "guestbook"}, Ports: frontend},
			{Name: "guestbook-3", Labels: map[string]string{"app": "guestbook"}, Ports: frontend},
			{Name: "busybox", Labels: map[string]string{"run": "busybox"}},
		}},
		{Name: "other", Pods: []scenario.Pod{
			{Name: "guestbook", Labels: map[string]string{"app": "guestbook"}, Ports: frontend},
		}},
	}}
}

// RunDemo replays the guestbook tutorial on l and returns an error when the lab does not behave as
// the tutorial says.
func RunDemo(ctx context.Context, l *Lab, w io.Writer) (err error) {
	fmt.Fprintf(w, "\nkube-proxy mode: %s (every node's kube-proxy forwards the Services; --proxy-mode picks the mode)\n", l.opts.ProxyMode)
	fmt.Fprintln(w, "\nCreating the guestbook: redis-master, two redis slaves, three guestbook frontends and busybox in")
	fmt.Fprintln(w, "namespace default with the Services redis-master, redis-slave and frontend, and one more guestbook")
	fmt.Fprintln(w, "frontend in namespace other.")
	if err := l.Setup(ctx, guestbookCluster()); err != nil {
		return err
	}
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, l.Teardown(cleanupCtx))
	}()
	l.WritePods(w)

	fmt.Fprintf(w, "\nWithout a NetworkPolicy every pod reaches redis on port %d, also through the ClusterIP of\n", redisPort)
	fmt.Fprintf(w, "Service redis-master (column %sredis-master):\n", demoServicePrefix)
	before := l.redisMatrix(ctx)
	before.Write(w)
	if err := expectRedis(before, nil); err != nil {
		return err
	}

	policies, err := loadPolicies(filepath.Join(l.opts.RepoRoot, redisPolicyFile))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nApplying %s: pods labelled app=redis now accept connections\n", redisPolicyFile)
	fmt.Fprintln(w, "only from pods labelled app=guestbook in their own namespace.")
	applied := time.Now()
	if err := l.ApplyPolicies(ctx, policies); err != nil {
		return err
	}
	after := l.redisMatrix(ctx)
	for time.Since(applied) < demoConvergeWait && expectRedis(after, demoBlocked) != nil && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		after = l.redisMatrix(ctx)
	}
	fmt.Fprintf(w, "\nAfter %s the agents enforce it:\n", timeSince(applied))
	after.Write(w)
	fmt.Fprintln(w)
	for _, src := range demoClients {
		if why, blocked := demoBlocked[src]; blocked {
			fmt.Fprintf(w, "%s times out connecting to redis: %s.\n", src, why)
		} else {
			fmt.Fprintf(w, "%s still connects to every redis pod and to Service redis-master.\n", src)
		}
	}
	if err := expectRedis(after, demoBlocked); err != nil {
		return err
	}
	return l.explainDemo(ctx, w)
}

// explainDemo asks why busybox cannot reach redis through its Service, as a user would with
// `kubectl nftpolicy explain`: the policies' reason and each node's trace must say denied.
func (l *Lab) explainDemo(ctx context.Context, w io.Writer) error {
	args := []string{"default/busybox", demoServicePrefix + "default/redis-master", fmt.Sprintf("%d/tcp", redisPort)}
	fmt.Fprintf(w, "\nWhy? $ kubectl nftpolicy explain %s\n", strings.Join(args, " "))
	var stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: w, ErrOut: &stderr}
	code := plugin.Main(ctx, append([]string{"explain", "--kubeconfig", l.Kubeconfig()}, args...), streams)
	if code != plugin.ExitDenied {
		return fmt.Errorf("kubectl nftpolicy explain %s: exit status %d, want %d (denied): %s", strings.Join(args, " "), code, plugin.ExitDenied, stderr.String())
	}
	return nil
}

// redisMatrix probes redis from every client: each redis pod's address, and redis-master's ClusterIP,
// which the policy must judge as the redis-master pod behind it.
func (l *Lab) redisMatrix(ctx context.Context) *Matrix {
	return probeMatrix(ctx, demoClients, demoRedis, scenario.DefaultWorkers, func(ctx context.Context, src, dst string) (bool, error) {
		family := l.Families()[0]
		if svc, ok := strings.CutPrefix(dst, demoServicePrefix); ok {
			return l.ProbeNamedService(ctx, src, "default/"+svc, redisPort, scenario.ProtocolTCP, family)
		}
		return l.Probe(ctx, src, dst, redisPort, scenario.ProtocolTCP, family)
	})
}

// expectRedis checks that exactly the clients in blocked are blocked from every redis pod.
func expectRedis(m *Matrix, blocked map[string]string) error {
	var errs []error
	for _, src := range m.sources {
		for _, dst := range m.destinations {
			pair := [2]string{src, dst}
			if err := m.errs[pair]; err != nil {
				errs = append(errs, err)
				continue
			}
			_, wantBlocked := blocked[src]
			if m.allowed[pair] == wantBlocked {
				errs = append(errs, fmt.Errorf("%s -> %s: expected allowed=%t", src, dst, !wantBlocked))
			}
		}
	}
	return errors.Join(errs...)
}

func loadPolicies(path string) ([]*networkingv1.NetworkPolicy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	policies, err := scenario.ParsePolicies(string(data))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return policies, nil
}

// timeSince formats an elapsed time for people.
func timeSince(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
