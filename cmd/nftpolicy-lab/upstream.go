package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
	"github.com/nftpolicy/nftpolicy/lab/upstream"
)

// cmdUpstream runs the upstream e2e suite's NetworkPolicy specs on a lab of their own per IP family
// of --ip-family (a comma-separated list here), and with --report writes the results page.
func cmdUpstream(ctx context.Context, args []string) int {
	fs := newFlagSet("upstream")
	var lf labFlags
	lf.register(fs)
	e2e := fs.String("e2e", "", "The e2e.test binary (default: e2e.test in the lab's assets directory, from hack/build-k8s.sh --e2e).")
	report := fs.String("report", "", "Write the results as Markdown to this file (test/e2e/UPSTREAM.md).")
	focus := fs.String("focus", upstream.Focus, "The specs to run (e2e.test --ginkgo.focus).")
	reportDir := fs.String("report-dir", "", "Where e2e.test writes its reports and output (default: a new directory under /tmp).")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	dir := *reportDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "nftpolicy-upstream-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	started := time.Now()
	var results []*upstream.Result
	code := 0
	for _, family := range strings.Split(lf.family, ",") {
		lf := lf
		lf.family = family
		result, err := runUpstream(ctx, lf, *e2e, *focus, filepath.Join(dir, family))
		if err != nil {
			fmt.Fprintf(os.Stderr, "nftpolicy-lab upstream (%s): %v\n", family, err)
			code = 1
		}
		if result == nil {
			continue
		}
		results = append(results, result)
		fmt.Printf("%s: %d passed, %d failed, %d skipped in %s\n", result.Name, len(result.Passed), len(result.Failed), len(result.Skipped), result.Duration.Round(time.Second))
		for _, name := range result.Failed {
			fmt.Printf("  FAIL %s\n", name)
		}
		if !result.OK() {
			code = 1
		}
	}
	if *report != "" && len(results) > 0 {
		f, err := os.Create(*report)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		upstream.WriteMarkdown(f, started, results)
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

// runUpstream brings a lab up, runs the suite on it and removes the lab. SCTP specs are skipped,
// with the lab's reason, where the lab cannot carry SCTP.
func runUpstream(ctx context.Context, lf labFlags, e2e, focus, reportDir string) (*upstream.Result, error) {
	l, err := lab.Start(ctx, lf.options("", os.Stdout))
	if err != nil {
		return nil, err
	}
	defer closeLab(l)
	if e2e == "" {
		e2e = filepath.Join(l.AssetsDir(), "e2e.test")
	}
	opts := upstream.Options{E2E: e2e, Focus: focus, Kubeconfig: l.Kubeconfig(), ReportDir: reportDir, Out: os.Stdout}
	if ok, why := l.SupportsProtocol(scenario.ProtocolSCTP); !ok {
		opts.Skip, opts.SkipReason = `\[Feature:SCTPConnectivity\]`, why
	}
	if opts.Release, err = l.ServerVersion(); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s, kube-proxy %s", lf.family, lf.proxyMode)
	return upstream.Run(ctx, name, opts)
}
