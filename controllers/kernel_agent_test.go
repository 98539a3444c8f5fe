package controllers_test

import (
	"context"
	"os/exec"
	"sync"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/test/nftlisting"
)

// kernelAgent is one node's agent built by agent.New on the dataplane agent.OpenDataplane opens, as
// agent.Run does, with two differences a test needs: the controller name may repeat (two nodes, and a
// restart, in one process), and the backend records the transactions it committed. Each kernelAgent is
// one "process": its applier starts knowing nothing of the kernel, like an agent after a restart or a
// crash.
type kernelAgent struct {
	nodeName   string
	reconciler *controllers.NodeReconciler
	kernel     *recordingBackend

	closeDataplane func()
	mgr            ctrl.Manager
	cancel         context.CancelFunc
	done           chan error
	stopOnce       sync.Once
}

// kernelResyncPeriod is short so that periodic resyncs happen while the specs watch the kernel: a steady
// state must cost no transaction.
const kernelResyncPeriod = time.Second

// newKernelAgent builds, without starting it, the agent of nodeName programming node's namespace.
func newKernelAgent(nodeName string, node *netlab.Node) *kernelAgent {
	return newKernelAgentWith(nodeName, node, true)
}

// newKernelAgentWith builds an agent that watches nf_tables notifications only when notified is set;
// without them it finds foreign changes by reading the table back on resyncs.
func newKernelAgentWith(nodeName string, node *netlab.Node, notified bool) *kernelAgent {
	return newKernelAgentTweaked(nodeName, node, notified, nil)
}

// newKernelAgentTweaked builds an agent whose options tweak adjusts (when not nil) before the
// dataplane's optional parts (the drop log's reader) are opened as agent.Run opens them.
func newKernelAgentTweaked(nodeName string, node *netlab.Node, notified bool, tweak func(*agent.Options)) *kernelAgent {
	opts := agent.Options{NodeName: nodeName, Table: table, MetricsAddr: "0", ProbeAddr: "0", ResyncPeriod: kernelResyncPeriod, VerifyIncremental: true}
	if tweak != nil {
		tweak(&opts)
	}
	dp, closeDataplane, err := agent.OpenDataplane(node.Path, table)
	Expect(err).NotTo(HaveOccurred())
	if !notified {
		dp.ForeignChanges = nil
	}
	dp.DropLog, err = agent.OpenDropLog(node.Path, opts)
	Expect(err).NotTo(HaveOccurred())
	if dp.DropLog != nil {
		closeRest := closeDataplane
		closeDataplane = func() { _ = dp.DropLog.Close(); closeRest() }
	}
	recording := &recordingBackend{Backend: dp.Backend}
	dp.Backend = recording
	mgr, r, err := agent.New(logf.IntoContext(ctx, logf.Log.WithValues("netns", node.Name)), cfg, opts,
		dp, func(o *ctrl.Options) { o.Controller = config.Controller{SkipNameValidation: ptr.To(true)} })
	Expect(err).NotTo(HaveOccurred())
	return &kernelAgent{
		nodeName:       nodeName,
		reconciler:     r,
		kernel:         recording,
		closeDataplane: closeDataplane,
		mgr:            mgr,
		done:           make(chan error, 1),
	}
}

// start runs the manager until stop.
func (a *kernelAgent) start() {
	var mgrCtx context.Context
	mgrCtx, a.cancel = context.WithCancel(ctx)
	go func() { a.done <- a.mgr.Start(mgrCtx) }()
}

// stop stops the manager, if it runs, and waits for it, as a SIGTERM stops the agent: the table is left
// programmed. It releases the agent's handles on the namespace; calling it again does nothing.
func (a *kernelAgent) stop() {
	a.stopOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
			var err error
			Eventually(a.done, 30*time.Second).Should(Receive(&err), "the manager of %s stops", a.nodeName)
			Expect(err).NotTo(HaveOccurred(), "the manager of %s", a.nodeName)
		}
		a.closeDataplane()
	})
}

// recordingBackend passes transactions to the kernel and keeps those the kernel committed.
type recordingBackend struct {
	nft.Backend

	mu        sync.Mutex
	committed []*nft.Transaction
}

func (b *recordingBackend) Run(tx *nft.Transaction) error {
	if err := b.Backend.Run(tx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.committed = append(b.committed, tx)
	return nil
}

func (b *recordingBackend) transactions() []*nft.Transaction {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*nft.Transaction(nil), b.committed...)
}

func (b *recordingBackend) last() *nft.Transaction {
	txs := b.transactions()
	if len(txs) == 0 {
		return &nft.Transaction{}
	}
	return txs[len(txs)-1]
}

// kernelListing returns the kernel's listing of our table in node's namespace, as `nft -s list table`
// prints it (without the counters' values, which traffic changes), or the error when the table does
// not exist.
func kernelListing(node *netlab.Node) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", node.Name, "nft", "-s", "list", "table", "inet", table).CombinedOutput()
	return string(out), err
}

// tableContent is a listing of our table as sorted blocks of sets, maps and chains: the kernel lists
// them in creation order, which differs between a table built by one full replacement and one grown by
// incremental transactions.
func tableContent(listing string) []string {
	return nftlisting.Blocks(nftlisting.NormalizeElements(listing), table)
}
