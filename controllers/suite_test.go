package controllers_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/nft"
)

// The suite runs the agent of node-a against a real API server (envtest: kube-apiserver and etcd from
// KUBEBUILDER_ASSETS) with the in-memory nft backend in place of the kernel.
const (
	thisNode  = "node-a"
	otherNode = "node-b"
	table     = "nftpolicy"
)

// IP plan. Pods of node-a live in 10.1.0.0/24 and reach the host through veth-<pod>; pods of node-b
// live in 10.2.0.0/24. Every address a test gives a local pod has its interface here, because the
// resolver is read concurrently by the agent and must not change during the run.
var (
	redisIP      = netip.MustParseAddr("10.1.0.10") // default/redis, node-a
	dbIP         = netip.MustParseAddr("10.1.0.11") // default/db, node-a
	guestbookIP  = netip.MustParseAddr("10.2.0.20") // default/guestbook, node-b
	otherIP      = netip.MustParseAddr("10.2.0.21") // default/other, node-b
	frontendIP   = netip.MustParseAddr("10.2.0.30") // web/frontend, node-b
	frontendIP2  = netip.MustParseAddr("10.2.0.31") // web/frontend after it moves
	remoteIfname = "eth0"                           // where traffic of node-b's pods arrives

	hostInterfaces = nft.FakeInterfaces{
		redisIP: "veth-redis",
		dbIP:    "veth-db",
	}
)

var (
	cfg       *rest.Config
	k8sClient client.Client // a real client of the real API server
	kernel    *nft.Fake
	testEnv   *envtest.Environment
	ctx       context.Context
	cancel    context.CancelFunc
)

func TestControllers(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is unset: these tests need a real kube-apiserver and etcd (see hack/setup.sh)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	// The agent's logs at V(4) go to GinkgoWriter: shown for failed specs only.
	logf.SetLogger(funcr.New(func(prefix, args string) { GinkgoWriter.Println(prefix, args) }, funcr.Options{Verbosity: 4}))
	ctx, cancel = context.WithCancel(context.Background())
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)

	crds, err := lab.CRDPaths(ctx, "..")
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
	}
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		cancel()
		Expect(testEnv.Stop()).To(Succeed())
	})

	k8sClient, err = client.New(cfg, client.Options{Scheme: agent.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	for _, name := range []string{thisNode, otherNode} {
		Expect(k8sClient.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	}

	kernel = nft.NewFake(table)
	mgr, r, err := agent.New(ctx, cfg,
		// A short resync period, so that the status heartbeat is exercised too.
		agent.Options{NodeName: thisNode, Table: table, MetricsAddr: "0", ProbeAddr: "0", ResyncPeriod: 2 * time.Second, VerifyIncremental: true,
			ClusterNetworkPolicies: true},
		agent.Dataplane{Backend: &flakyKernel{Backend: kernel}, Interfaces: hostInterfaces, ForeignChanges: foreignNews},
		func(o *ctrl.Options) { o.Controller = config.Controller{SkipNameValidation: ptr.To(true)} })
	Expect(err).NotTo(HaveOccurred())
	reconciler = r
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var reconciler *controllers.NodeReconciler

// foreignNews stands in for the kernel's notifications of other writers' changes to the fake's table.
var foreignNews = make(chan nft.ForeignChange, 1)

// failNextTransactions makes the next n transactions fail without touching the fake kernel, as a
// rejected netlink batch leaves the kernel's table as it was.
var failNextTransactions atomic.Int32

type flakyKernel struct{ nft.Backend }

func (k *flakyKernel) Run(tx *nft.Transaction) error {
	if failNextTransactions.Add(-1) >= 0 {
		return errors.New("injected failure: the kernel rejected the batch")
	}
	failNextTransactions.Store(0)
	return k.Backend.Run(tx)
}
