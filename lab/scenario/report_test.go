package scenario

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// checkOf builds a finished check of cluster c in which every probed pair was observed as expected,
// then applies the tweaks.
func checkOf(t *testing.T, c *ClusterSpec, e Expect, tweaks ...func(*CheckResult)) CheckResult {
	t.Helper()
	expected, err := ExpandExpect(c, e)
	if err != nil {
		t.Fatal(err)
	}
	r := CheckResult{Expect: e, Sources: c.PodRefs(), Destinations: c.Serving(e.Port, e.Protocol), Expected: expected, Observed: map[Pair]bool{}}
	for p, v := range expected {
		r.Observed[p] = v
	}
	for _, tweak := range tweaks {
		tweak(&r)
	}
	return r
}

// observed makes p observed as allowed, and a mismatch.
func observed(p Pair, allowed bool) func(*CheckResult) {
	return func(r *CheckResult) {
		r.Observed[p] = allowed
		r.Mismatches = append(r.Mismatches, p)
	}
}

func probeFailed(p Pair, err error) func(*CheckResult) {
	return func(r *CheckResult) {
		delete(r.Observed, p)
		r.ProbeErrors = map[Pair]error{p: err}
		r.Mismatches = append(r.Mismatches, p)
	}
}

func TestReportGolden(t *testing.T) {
	def := DefaultCluster()
	deny := Expect{Port: 81, Protocol: ProtocolUDP, Deny: []string{"x/b -> x/a", "y/a -> x/a", "z/c -> x/a"}}
	guestbook := mustLoad(t, sharedFile(t, "guestbook-redis.yaml"))
	redis := guestbook.Steps[1].Expect[0]

	results := []Result{
		{Name: "default-deny-ingress", Runs: []FamilyRun{{
			Family: IPv4, wantSteps: 1,
			Steps: []StepResult{{Index: 0, Converged: true, ConvergeTime: 1234567 * time.Microsecond,
				Checks: []CheckResult{checkOf(t, def, deny)}}},
		}}},
		{Name: "broken-enforcer", Runs: []FamilyRun{{
			Family: IPv6, wantSteps: 3, Err: errors.New("step 3: applying policies: admission denied"),
			Steps: []StepResult{
				{Index: 0, Converged: false, ConvergeTime: 30 * time.Second, Checks: []CheckResult{
					checkOf(t, def, deny,
						observed(Pair{"x/b", "x/a"}, true),
						observed(Pair{"x/c", "x/a"}, false),
						probeFailed(Pair{"z/a", "z/b"}, errors.New("no route to host"))),
					{Expect: Expect{Port: 80, Protocol: ProtocolSCTP}, Skipped: "kernel has no SCTP sockets"},
				}},
				{Index: 1, Converged: true, ConvergeTime: 42 * time.Millisecond, Checks: []CheckResult{
					checkOf(t, guestbook.Cluster, redis, observed(Pair{"default/busybox", "default/redis-master"}, true)),
				}},
				{Index: 2, Err: errors.New("applying policies: admission denied")},
			},
		}}},
		{Name: "sctp-only", Skipped: "kernel has no SCTP sockets"},
	}
	var out bytes.Buffer
	var summary Summary
	for i := range results {
		WriteResult(&out, &results[i])
		summary.Add(&results[i])
	}
	out.WriteString(summary.String() + "\n")

	const golden = "testdata/report.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("report differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

func TestMatrixNumbersWideMatrices(t *testing.T) {
	c := &ClusterSpec{Namespaces: []Namespace{{Name: "a-rather-long-namespace-name"}}}
	for _, name := range []string{"first-pod-with-a-long-name", "second-pod-with-a-long-name", "third-pod-with-a-long-name", "fourth-pod-with-a-long-name"} {
		c.Namespaces[0].Pods = append(c.Namespaces[0].Pods, Pod{Name: name, Ports: []Port{{Port: 80, Protocol: ProtocolTCP}}})
	}
	check := checkOf(t, c, Expect{Port: 80, Protocol: ProtocolTCP})
	lines := renderMatrix(&check)
	if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"1", "2", "3", "4"}) {
		t.Errorf("header = %q, want pod numbers", lines[0])
	}
	want := []string{"1", "a-rather-long-namespace-name/first-pod-with-a-long-name", "-", ".", ".", "."}
	if got := strings.Fields(lines[1]); !reflect.DeepEqual(got, want) {
		t.Errorf("first row = %q, want the fields %q", lines[1], want)
	}
	if strings.Index(lines[0], " 1 ") != strings.Index(lines[1], " - ") {
		t.Errorf("column 1 is not aligned:\n%s\n%s", lines[0], lines[1])
	}
}
