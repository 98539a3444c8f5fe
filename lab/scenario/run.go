package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults of Options.
const (
	DefaultPollInterval = time.Second
	DefaultDeadline     = 30 * time.Second
	DefaultWorkers      = 16

	// teardownTimeout bounds the cleanup that runs even after ctx is cancelled.
	teardownTimeout = 2 * time.Minute
)

// Options tune a run. The zero value runs IPv4 only with the defaults of the format.
type Options struct {
	// Families lists the IP families to run the file for, each from a clean cluster; [ipv4, ipv6]
	// on a dual-stack lab. Empty means ipv4.
	Families []Family
	// PollInterval is the pause between convergence probes of the pairs that do not match yet.
	PollInterval time.Duration
	// Deadline bounds convergence polling of one step.
	Deadline time.Duration
	// Workers bounds how many probes run at once.
	Workers int
	// DefaultVia is how an expectation without a via key is checked: ViaPod (also when unset) or
	// ViaService. An expectation with a via key is checked only the way it names.
	DefaultVia Via
	// AlsoViaService checks every expectation without a via key twice within its step, after the
	// same convergence: to the pods' IPs and through their own Services, two matrices.
	AlsoViaService bool
}

func (o Options) withDefaults() Options {
	if len(o.Families) == 0 {
		o.Families = []Family{IPv4}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	return o
}

// runner holds what every step of one file's run needs.
type runner struct {
	cluster  Cluster
	scenario *Scenario
	opts     Options
	// unsupported maps a protocol the lab cannot probe to the reason.
	unsupported map[string]string
}

// Run executes the scenario once per family of opts, each run from a clean cluster (Setup, the
// steps, Teardown). Within a step it deletes, applies, relabels, polls the probed pairs until they
// match or the deadline passes, then probes every matrix once more and compares it exactly. A step
// whose changes fail ends its run; a mismatch does not.
func Run(ctx context.Context, cluster Cluster, s *Scenario, opts Options) Result {
	r := &runner{cluster: cluster, scenario: s, opts: opts.withDefaults(), unsupported: map[string]string{}}
	result := Result{Name: s.Name}
	if reason, skip := r.skipWholeFile(); skip {
		result.Skipped = reason
		return result
	}
	if err := r.clusterPoliciesUnsupported(); err != nil {
		// The format: "A runner without ClusterNetworkPolicy support fails such a file with that reason."
		for _, family := range r.opts.Families {
			result.Runs = append(result.Runs, FamilyRun{Family: family, Err: err, wantSteps: len(s.Steps)})
		}
		return result
	}
	for _, family := range r.opts.Families {
		result.Runs = append(result.Runs, r.runFamily(ctx, family))
	}
	return result
}

// clusterPoliciesUnsupported is why the file cannot run: it uses ClusterNetworkPolicies and the
// cluster does not enforce them.
func (r *runner) clusterPoliciesUnsupported() error {
	if !r.scenario.UsesClusterNetworkPolicies() {
		return nil
	}
	cpc, ok := r.cluster.(ClusterPolicyCluster)
	if !ok {
		return fmt.Errorf("%w by this runner", ErrClusterNetworkPolicy)
	}
	if ok, reason := cpc.EnforcesClusterNetworkPolicy(); !ok {
		return fmt.Errorf("%w: %s", ErrClusterNetworkPolicy, reason)
	}
	return nil
}

// skipWholeFile reports whether every expectation of the file needs a protocol the lab cannot
// probe, so running it would check nothing.
func (r *runner) skipWholeFile() (string, bool) {
	reason, expects := "", 0
	for _, st := range r.scenario.Steps {
		for _, e := range st.Expect {
			expects++
			why, ok := r.unsupportedReason(e.Protocol)
			if !ok {
				return "", false
			}
			reason = why
		}
	}
	return reason, expects > 0
}

// unsupportedReason asks the lab once per protocol.
func (r *runner) unsupportedReason(protocol string) (string, bool) {
	if reason, ok := r.unsupported[protocol]; ok {
		return reason, reason != ""
	}
	ok, reason := r.cluster.SupportsProtocol(protocol)
	if ok {
		reason = ""
	} else if reason == "" {
		reason = protocol + " is not supported by the lab"
	}
	r.unsupported[protocol] = reason
	return reason, !ok
}

func (r *runner) runFamily(ctx context.Context, family Family) (run FamilyRun) {
	run = FamilyRun{Family: family, wantSteps: len(r.scenario.Steps)}
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if err := r.cluster.Teardown(cleanupCtx); err != nil {
			run.Err = errors.Join(run.Err, fmt.Errorf("tearing down the cluster: %w", err))
		}
	}()
	if err := r.cluster.Setup(ctx, *r.scenario.Cluster); err != nil {
		run.Err = fmt.Errorf("setting up the cluster: %w", err)
		return run
	}
	for i := range r.scenario.Steps {
		step := r.runStep(ctx, i, family)
		run.Steps = append(run.Steps, step)
		if step.Err != nil {
			run.Err = fmt.Errorf("step %d: %w", i+1, step.Err)
			return run
		}
		if err := ctx.Err(); err != nil {
			run.Err = err
			return run
		}
	}
	return run
}

func (r *runner) runStep(ctx context.Context, index int, family Family) StepResult {
	step := &r.scenario.Steps[index]
	result := StepResult{Index: index}
	if err := r.change(ctx, step, family); err != nil {
		result.Err = err
		return result
	}
	var checks []*check
	for _, e := range step.Expect {
		for _, via := range r.ways(e) {
			c, err := r.planCheck(e, via)
			if err != nil {
				result.Err = err
				return result
			}
			checks = append(checks, c)
		}
	}
	result.ConvergeTime, result.Converged = r.converge(ctx, checks, family)
	for _, c := range checks {
		result.Checks = append(result.Checks, r.finalCheck(ctx, c, family))
	}
	return result
}

// ways lists how the expectation is checked: the way its via key names, else both ways when the
// options say so, else the default way.
func (r *runner) ways(e Expect) []Via {
	switch {
	case e.Via != ViaDefault:
		return []Via{e.Via}
	case r.opts.AlsoViaService:
		return []Via{ViaPod, ViaService}
	case r.opts.DefaultVia == ViaService:
		return []Via{ViaService}
	}
	return []Via{ViaPod}
}

// change applies the step's delete, apply and relabel, in that order. ClusterNetworkPolicies are
// deleted after NetworkPolicies and applied before them; only a ClusterPolicyCluster gets here with
// any (see clusterPoliciesUnsupported).
func (r *runner) change(ctx context.Context, step *Step, family Family) error {
	policyDeletes, clusterDeletes := step.ClusterPolicyDeletes()
	if len(policyDeletes) > 0 {
		if err := r.cluster.DeletePolicies(ctx, policyDeletes); err != nil {
			return fmt.Errorf("deleting policies: %w", err)
		}
	}
	cpc, _ := r.cluster.(ClusterPolicyCluster)
	if len(clusterDeletes) > 0 {
		if err := cpc.DeleteClusterPolicies(ctx, clusterDeletes); err != nil {
			return fmt.Errorf("deleting ClusterNetworkPolicies: %w", err)
		}
	}
	manifests, err := step.Manifests(family, func(pod string) (netip.Addr, error) {
		return r.cluster.PodIP(pod, family)
	})
	if err != nil {
		return fmt.Errorf("rendering apply for %s: %w", family, err)
	}
	if len(manifests.ClusterNetworkPolicies) > 0 {
		if err := cpc.ApplyClusterPolicies(ctx, manifests.ClusterNetworkPolicies); err != nil {
			return fmt.Errorf("applying ClusterNetworkPolicies: %w", err)
		}
	}
	if len(manifests.NetworkPolicies) > 0 {
		if err := r.cluster.ApplyPolicies(ctx, manifests.NetworkPolicies); err != nil {
			return fmt.Errorf("applying policies: %w", err)
		}
	}
	for _, rl := range step.Relabel {
		if err := r.cluster.Relabel(ctx, rl); err != nil {
			return fmt.Errorf("relabelling %s %s: %w", rl.Kind, rl.Name, err)
		}
	}
	return nil
}
