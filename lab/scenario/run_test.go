package scenario

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fastOptions poll every millisecond so that convergence costs the tests little time.
func fastOptions() Options {
	return Options{PollInterval: time.Millisecond, Deadline: 5 * time.Second}
}

func mustLoad(t *testing.T, path string) *Scenario {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, text string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// report renders a result for failure messages.
func report(r *Result) string {
	var out bytes.Buffer
	WriteResult(&out, r)
	return out.String()
}

func TestRunSharedExamplesPass(t *testing.T) {
	for _, name := range []string{"default-deny-ingress.yaml", "guestbook-redis.yaml"} {
		t.Run(name, func(t *testing.T) {
			s := mustLoad(t, sharedFile(t, name))
			lab := &fakeCluster{lag: 20 * time.Millisecond}
			result := Run(context.Background(), lab, s, fastOptions())
			if !result.Passed() {
				t.Fatalf("%s failed:\n%s", name, report(&result))
			}
			if got := lab.callLog(); got[0] != "setup" || got[len(got)-1] != "teardown" {
				t.Errorf("calls = %v, want setup first and teardown last", got)
			}
		})
	}
}

func TestRunWaitsForConvergence(t *testing.T) {
	const lag = 50 * time.Millisecond
	s := mustLoad(t, sharedFile(t, "default-deny-ingress.yaml"))
	lab := &fakeCluster{lag: lag}
	result := Run(context.Background(), lab, s, fastOptions())
	if !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	step := result.Runs[0].Steps[0]
	if !step.Converged || step.ConvergeTime <= 0 || step.ConvergeTime > 2*time.Second {
		t.Errorf("converged = %v in %v, want true within 2s", step.Converged, step.ConvergeTime)
	}
	// The runner kept polling while the enforcer lagged: some probes saw the state before the change.
	// (The lag itself is not a lower bound of ConvergeTime: the runner's clock starts after the change.)
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if lab.staleProbes == 0 {
		t.Error("no probe saw the state before the change: the runner did not wait for convergence")
	}
}

func TestRunFailsWhenPoliciesAreNotEnforced(t *testing.T) {
	s := mustLoad(t, sharedFile(t, "default-deny-ingress.yaml"))
	lab := &fakeCluster{ignorePolicies: true}
	opts := fastOptions()
	opts.Deadline = 20 * time.Millisecond
	result := Run(context.Background(), lab, s, opts)
	if result.Passed() {
		t.Fatal("a lab that enforces nothing passed")
	}
	step := result.Runs[0].Steps[0]
	if step.Converged || step.ConvergeTime < opts.Deadline {
		t.Errorf("converged = %v in %v, want false after the %v deadline", step.Converged, step.ConvergeTime, opts.Deadline)
	}
	check := step.Checks[0]
	if len(check.Mismatches) != 24 {
		t.Errorf("%d mismatches, want the 24 deny pairs", len(check.Mismatches))
	}
	if check.Mismatches[0] != (Pair{"x/a", "x/b"}) {
		t.Errorf("first mismatch %s, want x/a -> x/b (row x/a first)", check.Mismatches[0])
	}
	out := report(&result)
	for _, want := range []string{"did not converge in", "[.]", "mismatch y/a -> x/a: expected blocked, observed allowed", "--- FAIL default-deny-ingress [ipv4]"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestRunFailsWhenTooMuchIsBlocked(t *testing.T) {
	// The file expects nothing blocked, but a leftover policy isolates x/a.
	s := mustParse(t, `name: all-open
description: d
steps:
  - apply: |
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: deny, namespace: x}
      spec: {podSelector: {matchLabels: {pod: a}}}
    expect: {port: 80, protocol: UDP, deny: []}
`)
	opts := fastOptions()
	opts.Deadline = 10 * time.Millisecond
	result := Run(context.Background(), &fakeCluster{}, s, opts)
	if result.Passed() {
		t.Fatal("passed although x/a is isolated")
	}
	if got := len(result.Runs[0].Steps[0].Checks[0].Mismatches); got != 8 {
		t.Errorf("%d mismatches, want the 8 sources of x/a", got)
	}
	if out := report(&result); !strings.Contains(out, "[X]") {
		t.Errorf("report does not mark the blocked cells:\n%s", out)
	}
}

func TestRunDualStackRunsOncePerFamilyFromCleanState(t *testing.T) {
	s := mustLoad(t, "testdata/every-key.yaml")
	lab := &fakeCluster{lag: 5 * time.Millisecond}
	opts := fastOptions()
	opts.Families = []Family{IPv4, IPv6}
	result := Run(context.Background(), lab, s, opts)
	if !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	if len(result.Runs) != 2 || result.Runs[0].Family != IPv4 || result.Runs[1].Family != IPv6 {
		t.Fatalf("runs = %+v, want ipv4 then ipv6", result.Runs)
	}
	var lifecycle []string
	for _, call := range lab.callLog() {
		if call == "setup" || call == "teardown" {
			lifecycle = append(lifecycle, call)
		}
	}
	if want := []string{"setup", "teardown", "setup", "teardown"}; !reflect.DeepEqual(lifecycle, want) {
		t.Errorf("lifecycle = %v, want %v", lifecycle, want)
	}
	var cidrs []string
	for _, p := range lab.applied {
		cidrs = append(cidrs, p.Spec.Ingress[0].From[1].IPBlock.Except[0])
	}
	if want := []string{"10.244.1.10/32", "fd00:10:244:1::a/128"}; !reflect.DeepEqual(cidrs, want) {
		t.Errorf("applied excepts = %v, want each family's address of ops/admin: %v", cidrs, want)
	}
}

func TestRunSkipsUnsupportedProtocol(t *testing.T) {
	s := mustLoad(t, "testdata/every-key.yaml")
	result := Run(context.Background(), &fakeCluster{}, s, fastOptions())
	if !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	sctp := result.Runs[0].Steps[3].Checks[1]
	if sctp.Skipped != "the fake lab has no SCTP sockets" || sctp.Observed != nil {
		t.Errorf("SCTP check = %+v, want skipped with the lab's reason", sctp)
	}
	if out := report(&result); !strings.Contains(out, "expect SCTP/9000: SKIP: the fake lab has no SCTP sockets") {
		t.Errorf("report does not show the skip:\n%s", out)
	}

	lab := &fakeCluster{sctp: true}
	result = Run(context.Background(), lab, s, fastOptions())
	if sctp := result.Runs[0].Steps[3].Checks[1]; sctp.Skipped != "" || len(sctp.Observed) != 3 {
		t.Errorf("SCTP check on a lab with SCTP = %+v, want 3 probes", sctp)
	}
}

func TestRunSkipsWholeFileWhenNothingCanBeProbed(t *testing.T) {
	s := mustParse(t, "name: sctp-only\ndescription: d\nsteps:\n  - expect: {port: 80, protocol: SCTP}\n")
	lab := &fakeCluster{}
	result := Run(context.Background(), lab, s, fastOptions())
	if result.Skipped == "" || result.Passed() || len(result.Runs) != 0 {
		t.Errorf("result = %+v, want the whole file skipped", result)
	}
	if calls := lab.callLog(); len(calls) != 0 {
		t.Errorf("a skipped file touched the lab: %v", calls)
	}
}

func TestRunStopsAtAFailingChange(t *testing.T) {
	s := mustLoad(t, sharedFile(t, "guestbook-redis.yaml"))
	lab := &fakeCluster{applyErr: errors.New("admission denied")}
	result := Run(context.Background(), lab, s, fastOptions())
	if result.Passed() {
		t.Fatal("passed although apply failed")
	}
	run := result.Runs[0]
	if len(run.Steps) != 2 || run.Steps[1].Err == nil || !strings.Contains(run.Err.Error(), "step 2: applying policies: admission denied") {
		t.Errorf("run = %+v, want it to stop at step 2 with the apply error", run)
	}
	if calls := lab.callLog(); calls[len(calls)-1] != "teardown" {
		t.Errorf("calls = %v, want teardown after the failure", calls)
	}
}

func TestProbesRunConcurrentlyWithinTheWorkerBound(t *testing.T) {
	s := mustLoad(t, sharedFile(t, "default-deny-ingress.yaml"))
	lab := &fakeCluster{probeDelay: 2 * time.Millisecond}
	opts := fastOptions()
	opts.Workers = 4
	if result := Run(context.Background(), lab, s, opts); !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	if lab.maxInFlight > 4 || lab.maxInFlight < 2 {
		t.Errorf("at most %d probes ran at once, want 2..4", lab.maxInFlight)
	}
}

func TestRunFilesSummary(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	paths := []string{
		write("open.yaml", "name: open\ndescription: d\nsteps:\n  - expect: {port: 81, protocol: TCP}\n"),
		write("misnamed.yaml", "name: other\ndescription: d\nsteps:\n  - expect: {port: 81, protocol: TCP}\n"),
		write("sctp-only.yaml", "name: sctp-only\ndescription: d\nsteps:\n  - expect: {port: 80, protocol: SCTP}\n"),
	}
	var out bytes.Buffer
	summary := RunFiles(context.Background(), &fakeCluster{}, paths, fastOptions(), &out)
	if summary != (Summary{Passed: 1, Failed: 1, Skipped: 1}) || summary.OK() {
		t.Errorf("summary = %+v", summary)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "1 passed, 1 failed, 1 skipped" {
		t.Errorf("last line = %q\n%s", last, out.String())
	}

	out.Reset()
	RunFiles(context.Background(), &fakeCluster{}, paths[:1], fastOptions(), &out)
	if !strings.HasSuffix(out.String(), "\n1 passed, 0 failed\n") {
		t.Errorf("output does not end with the summary:\n%s", out.String())
	}
}
