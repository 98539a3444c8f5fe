// Command nftpolicy-bench runs nftpolicy's benchmarks against the baselines (see package harness)
// and writes one JSON file per run, or renders bench/RESULTS.md from such a file.
//
//	nftpolicy-bench run -out bench/runs/RUN.json [flags]     (needs root: network namespaces)
//	nftpolicy-bench report -run bench/runs/RUN.json -out bench/RESULTS.md
//	nftpolicy-bench versus -base A1.json,A2.json -new B1.json,B2.json -out bench/VERSUS.md
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

func main() {
	log.SetFlags(log.Ltime)
	if len(os.Args) < 2 {
		log.Fatal("usage: nftpolicy-bench run|report|versus|netlink-bytes [flags]")
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	case "netlink-bytes":
		err = netlinkBytes(os.Args[2:])
	case "versus":
		err = versus(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// clusterFlags are the generator's knobs that the command exposes.
func clusterFlags(fs *flag.FlagSet) *generator.Params {
	p := generator.Defaults(50000, 10000, generator.DistinctSelectors)
	fs.Int64Var(&p.Seed, "seed", p.Seed, "generator seed")
	fs.IntVar(&p.Pods, "pods", p.Pods, "cluster pods P")
	fs.IntVar(&p.Policies, "policies", p.Policies, "policies N")
	fs.IntVar(&p.LocalPods, "local-pods", p.LocalPods, "local pods L")
	fs.IntVar(&p.Namespaces, "namespaces", p.Namespaces, "namespaces")
	fs.Func("shape", "distinct-selectors or wide-selectors", func(s string) error { p.Shape = generator.Shape(s); return nil })
	return &p
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	params := clusterFlags(fs)
	cfg := harness.Config{IPTablesRestore: "iptables-restore"}
	out := fs.String("out", "", "JSON file to write (default bench/runs/TIMESTAMP.json)")
	fs.IntVar(&cfg.FullRepeats, "full-repeats", 5, "full programming repetitions at full scale")
	fs.IntVar(&cfg.GrowthPods, "growth-pods", 0, "P of the growth comparison (default pods/2)")
	fs.IntVar(&cfg.GrowthRepeats, "growth-repeats", 5, "full programming repetitions at the growth scale")
	fs.IntVar(&cfg.Events, "events", 50, "events per kind for nftpolicy")
	fs.IntVar(&cfg.BaselineEvents, "baseline-events", 10, "events per kind for baseline C")
	fs.IntVar(&cfg.Resyncs, "resyncs", 5, "full re-applies during the UDP probe")
	fs.IntVar(&cfg.FloorRepeats, "floor-repeats", 50, "one-element transactions per kind")
	fs.StringVar(&cfg.IPTablesRestore, "iptables-restore", cfg.IPTablesRestore, "iptables-restore binary of baseline C")
	fs.BoolVar(&cfg.SkipNaive, "skip-naive", false, "do not program baseline B")
	fs.BoolVar(&cfg.NetlinkBytes, "netlink-bytes", true, "count nftpolicy's netlink bytes with strace (a second pass)")
	only := fs.String("only", "", "run only these steps (comma-separated: full,floor,probe,incremental)")
	_ = fs.Parse(args)
	if cfg.GrowthPods == 0 {
		cfg.GrowthPods = params.Pods / 2
	}
	if reason := netlab.Unavailable(); reason != "" {
		return fmt.Errorf("cannot run the benchmarks: %s", reason)
	}
	_ = netlab.Sweep(netlab.DefaultPrefix + fmt.Sprint(os.Getpid()))

	r := &harness.Run{Started: time.Now().UTC(), Machine: harness.DescribeMachine(cfg.IPTablesRestore), Config: cfg, Params: *params}
	for _, step := range harness.Steps(*params, cfg) {
		if !selected(*only, step.Name) {
			continue
		}
		log.Printf("running %s...", step.Name)
		start := time.Now()
		if err := step.Run(r); err != nil {
			return fmt.Errorf("%s: %w", step.Name, err)
		}
		log.Printf("%s done in %s", step.Name, time.Since(start).Round(time.Millisecond))
	}
	r.Finished = time.Now().UTC()
	if *out == "" {
		*out = fmt.Sprintf("bench/runs/%s.json", r.Started.Format("20060102T150405Z"))
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", *out)
	return nil
}

func selected(only, name string) bool {
	if only == "" {
		return true
	}
	for _, s := range splitComma(only) {
		if s == name {
			return true
		}
	}
	return false
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("run", "", "run JSON file")
	out := fs.String("out", "bench/RESULTS.md", "markdown file to write")
	_ = fs.Parse(args)
	r, err := readRun(*in)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(harness.Report(r, *in)), 0o644)
}

func readRun(path string) (*harness.Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r harness.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &r, nil
}

// versus renders two builds' runs, taken alternately, side by side (see harness.Versus).
func versus(args []string) error {
	fs := flag.NewFlagSet("versus", flag.ExitOnError)
	baseFiles := fs.String("base", "", "the base build's run JSON files, comma-separated, in the order taken")
	newFiles := fs.String("new", "", "the new build's run JSON files, comma-separated, in the order taken")
	baseName := fs.String("base-name", "base", "the base build's name in the table")
	newName := fs.String("new-name", "new", "the new build's name in the table")
	title := fs.String("title", "", "text above the table")
	out := fs.String("out", "bench/VERSUS.md", "markdown file to write")
	_ = fs.Parse(args)
	read := func(list string) ([]*harness.Run, error) {
		var runs []*harness.Run
		for _, path := range splitComma(list) {
			r, err := readRun(path)
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
		if len(runs) == 0 {
			return nil, fmt.Errorf("no run files given")
		}
		return runs, nil
	}
	base, err := read(*baseFiles)
	if err != nil {
		return fmt.Errorf("-base: %w", err)
	}
	cand, err := read(*newFiles)
	if err != nil {
		return fmt.Errorf("-new: %w", err)
	}
	text := *title + "\n\n" + harness.Versus(*baseName, *newName, base, cand)
	return os.WriteFile(*out, []byte(text), 0o644)
}

// netlinkBytes is the child of harness.CountNetlinkBytes, run under strace.
func netlinkBytes(args []string) error {
	fs := flag.NewFlagSet("netlink-bytes", flag.ExitOnError)
	params := clusterFlags(fs)
	netns := fs.String("netns", "", "network namespace path")
	rounds := fs.Int("rounds", 0, "rounds of events")
	_ = fs.Parse(args)
	sent, err := harness.ReplayForTrace(*params, *rounds, *netns)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(sent)
}
