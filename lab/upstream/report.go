package upstream

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteMarkdown writes the results of runs as the page test/e2e/UPSTREAM.md: per run the exact
// command, the counts and duration, then every spec failed, skipped (with its reason) and passed.
func WriteMarkdown(w io.Writer, started time.Time, results []*Result) {
	fmt.Fprintf(w, "# The upstream NetworkPolicy e2e suite against nftpolicy\n\n")
	fmt.Fprintf(w, "`e2e.test` built from `k8s.io/kubernetes/test/e2e` at %s (`hack/build-k8s.sh --e2e`), run by\n", results[0].Release)
	fmt.Fprintf(w, "`make test-upstream` on %s against a lab: its own real kube-apiserver, kube-controller-manager,\n", started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "kube-scheduler and kube-proxy, the lab's kubelet stand-ins, and one nftpolicy agent per node.\n\n")
	fmt.Fprintf(w, "| run | passed | failed | skipped | duration |\n|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s |\n", r.Name, len(r.Passed), len(r.Failed), len(r.Skipped), r.Duration.Round(time.Second))
	}
	for _, r := range results {
		fmt.Fprintf(w, "\n## %s\n\n```sh\n%s\n```\n", r.Name, shellQuote(r.Command))
		if len(r.Failed) > 0 {
			fmt.Fprintf(w, "\nFailed:\n\n")
			for _, name := range r.Failed {
				fmt.Fprintf(w, "- %s: %s\n", name, firstLine(r.Failures[name]))
			}
		}
		if len(r.Skipped) > 0 {
			fmt.Fprintf(w, "\nSkipped:\n\n")
			for _, s := range r.Skipped {
				fmt.Fprintf(w, "- %s: %s\n", s.Spec, firstLine(s.Reason))
			}
		}
		fmt.Fprintf(w, "\nPassed:\n\n")
		for _, name := range r.Passed {
			fmt.Fprintf(w, "- %s\n", name)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// shellQuote renders argv as one shell command line.
func shellQuote(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, " |\\[]*'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
