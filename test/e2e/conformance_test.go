package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// probeWorkers bounds the probes in flight at once. A blocked probe costs lab.ProbeTimeout, so a
// matrix probes in about that long when every pair of it is in flight together: the default cluster's
// largest matrix has 9 x 8 pairs. The probes mostly wait; two cores keep up.
const probeWorkers = 96

// scenarioSpecTimeout bounds one file: a dual-stack run is two runs, and a step may poll for 30 s.
const scenarioSpecTimeout = 8 * time.Minute

// scenarioFiles are the conformance scenarios, one spec each.
func scenarioFiles() []string {
	paths, err := filepath.Glob(filepath.Join("scenarios", "*.yaml"))
	if err != nil || len(paths) == 0 {
		panic(fmt.Sprintf("no scenario files in test/e2e/scenarios (%v)", err))
	}
	return paths
}

// describeScenarioSpecs runs every scenario file against env's lab, for each family the lab
// publishes, checking every expectation without a via key both to pod IPs and through the pods' own
// Services within the same step, so that CI does not run each file twice. A file whose every expectation needs a protocol the lab cannot probe (SCTP) is skipped
// with the lab's reason; skipped SCTP checks inside a file do not fail it.
func describeScenarioSpecs(env *labEnv) {
	Context("scenario", Label("scenario"), func() {
		for _, path := range scenarioFiles() {
			name := strings.TrimSuffix(filepath.Base(path), ".yaml")
			It(name, func(ctx SpecContext) {
				s, err := scenario.Load(path)
				Expect(err).NotTo(HaveOccurred())
				cluster := &snapshottingCluster{Lab: env.lab}
				result := scenario.Run(ctx, cluster, s, scenario.Options{
					Families: env.lab.Families(), Workers: probeWorkers, AlsoViaService: true,
				})

				var report bytes.Buffer
				scenario.WriteResult(&report, &result)
				GinkgoWriter.Print(report.String())
				if result.Skipped != "" {
					Skip(result.Skipped)
				}
				reportConvergence(&result)
				reportSkippedChecks(&result)
				Expect(result.Passed()).To(BeTrue(), "%s on the %s lab:\n%s\n%s", name, env.family, report.String(), cluster.evidence())
			}, SpecTimeout(scenarioSpecTimeout))
		}
	})
}

// reportConvergence adds the slowest step's convergence time to the spec's report.
func reportConvergence(r *scenario.Result) {
	var slowest time.Duration
	for _, run := range r.Runs {
		for _, st := range run.Steps {
			slowest = max(slowest, st.ConvergeTime)
		}
	}
	AddReportEntry("slowest convergence", slowest.Round(time.Millisecond).String())
}

// reportSkippedChecks names the expectations the lab could not probe (SCTP), with its reason.
func reportSkippedChecks(r *scenario.Result) {
	var skipped []string
	for _, run := range r.Runs {
		for _, st := range run.Steps {
			for _, c := range st.Checks {
				if c.Skipped != "" {
					skipped = append(skipped, fmt.Sprintf("[%s] step %d %s: %s", run.Family, st.Index+1, c.Expect, c.Skipped))
				}
			}
		}
	}
	if len(skipped) > 0 {
		AddReportEntry("skipped checks", strings.Join(skipped, "\n"))
	}
}

// snapshottingCluster is the lab, recording every node's table and NodeEnforcement status just
// before each delete, apply and relabel call (the first of a step's calls sees the state the previous
// step was checked against) and at teardown (the last step's), so that a failing file shows what the
// kernel held.
type snapshottingCluster struct {
	*lab.Lab

	mu        sync.Mutex
	snapshots []string
	changes   int
}

var _ scenario.Cluster = (*snapshottingCluster)(nil)

func (c *snapshottingCluster) snapshot(ctx context.Context, when string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snapshots = append(c.snapshots, fmt.Sprintf("=== kernel tables %s\n%s", when, kernelListings(ctx, c.Lab)))
}

// beforeChange snapshots before one delete, apply or relabel call.
func (c *snapshottingCluster) beforeChange(ctx context.Context, what string) {
	c.mu.Lock()
	c.changes++
	n := c.changes
	c.mu.Unlock()
	c.snapshot(ctx, fmt.Sprintf("before change %d (%s)", n, what))
}

func (c *snapshottingCluster) Setup(ctx context.Context, spec scenario.ClusterSpec) error {
	c.mu.Lock()
	c.changes = 0
	c.mu.Unlock()
	defer logDuration("set up the cluster", time.Now())
	return c.Lab.Setup(ctx, spec)
}

func logDuration(what string, begin time.Time) {
	GinkgoWriter.Printf("%s in %s\n", what, time.Since(begin).Round(time.Millisecond))
}

func (c *snapshottingCluster) ApplyPolicies(ctx context.Context, policies []*networkingv1.NetworkPolicy) error {
	c.beforeChange(ctx, "apply")
	return c.Lab.ApplyPolicies(ctx, policies)
}

func (c *snapshottingCluster) DeletePolicies(ctx context.Context, refs []string) error {
	c.beforeChange(ctx, "delete "+strings.Join(refs, " "))
	return c.Lab.DeletePolicies(ctx, refs)
}

func (c *snapshottingCluster) Relabel(ctx context.Context, r scenario.Relabel) error {
	c.beforeChange(ctx, "relabel "+r.Name)
	return c.Lab.Relabel(ctx, r)
}

func (c *snapshottingCluster) Teardown(ctx context.Context) error {
	c.snapshot(ctx, "after the last step, before teardown")
	defer logDuration("tore the cluster down", time.Now())
	return c.Lab.Teardown(ctx)
}

// evidence is every snapshot, in order.
func (c *snapshottingCluster) evidence() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.snapshots, "\n")
}
