// Command packet-bench is measurement 3 of nftpolicy's benchmarks: per-packet cost with 0 and N
// policies, and with N policies and drop logging on, against a conntrack-only baseline and baseline
// B (see package packet). It writes one JSON
// file per run, or renders bench/PACKET.md from such a file.
//
//	packet-bench run -out bench/runs/packet-RUN.json [flags]     (needs root: network namespaces)
//	packet-bench report -run bench/runs/packet-RUN.json -out bench/PACKET.md
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
	"github.com/nftpolicy/nftpolicy/test/bench/packet"
)

func main() {
	log.SetFlags(log.Ltime)
	if len(os.Args) < 2 {
		log.Fatal("usage: packet-bench run|report [flags]")
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	o := packet.DefaultOptions()
	fs.Int64Var(&o.Params.Seed, "seed", o.Params.Seed, "generator seed")
	fs.IntVar(&o.Params.Pods, "pods", o.Params.Pods, "cluster pods P")
	fs.IntVar(&o.Params.Policies, "policies", o.Params.Policies, "policies N")
	fs.IntVar(&o.Params.LocalPods, "local-pods", o.Params.LocalPods, "local pods L")
	fs.IntVar(&o.Params.Namespaces, "namespaces", o.Params.Namespaces, "namespaces")
	fs.Func("shape", "distinct-selectors or wide-selectors", func(s string) error { o.Params.Shape = generator.Shape(s); return nil })
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds (every table runs every workload once per round)")
	fs.IntVar(&o.CRRWorkers, "crr-workers", o.CRRWorkers, "client threads of the connect-request-close loop")
	fs.Float64Var(&o.CRRSeconds, "crr-seconds", o.CRRSeconds, "duration of one CRR run")
	fs.Float64Var(&o.StreamSeconds, "stream-seconds", o.StreamSeconds, "duration of one stream run")
	fs.IntVar(&o.UDPWorkers, "udp-workers", o.UDPWorkers, "client threads of the UDP ping-pong")
	fs.Float64Var(&o.UDPSeconds, "udp-seconds", o.UDPSeconds, "duration of one UDP run")
	fs.IntVar(&o.ServerThreads, "server-threads", o.ServerThreads, "server threads per socket")
	fs.IntVar(&o.PauseMS, "pause-ms", o.PauseMS, "pause before each run")
	dropLog := fs.Bool("drop-log", true, "also measure A with drop logging on (A-N-log)")
	logOpts := packet.DefaultDropLogOptions()
	group := fs.Uint("drop-log-group", uint(logOpts.Group), "NFLOG group of the logging table (the agent's default)")
	fs.Func("drop-log-pair-rate", "records per second per address pair (the agent's default: 5)", uintFlag(&logOpts.PairRate))
	fs.Func("drop-log-rate", "records per second per log rule (the agent's default: 50)", uintFlag(&logOpts.Rate))
	out := fs.String("out", "", "JSON file to write (default bench/runs/packet-TIMESTAMP.json)")
	md := fs.String("report", "", "also render the markdown report to this file")
	_ = fs.Parse(args)
	if o.Rounds < 1 || o.CRRWorkers < 1 || o.UDPWorkers < 1 || o.ServerThreads < 1 {
		return fmt.Errorf("rounds, workers and threads must be at least 1")
	}
	if *group > math.MaxUint16 || logOpts.PairRate == 0 || logOpts.Rate == 0 {
		return fmt.Errorf("-drop-log-group is at most %d, the rates at least 1", math.MaxUint16)
	}
	logOpts.Group = uint16(*group)
	o.DropLog = nil
	if *dropLog {
		o.DropLog = logOpts
	}
	if reason := netlab.Unavailable(); reason != "" {
		return fmt.Errorf("cannot run the benchmark: %s", reason)
	}
	if *out == "" {
		*out = fmt.Sprintf("bench/runs/packet-%s.json", time.Now().UTC().Format("20060102T150405Z"))
	}
	o.Log = log.Printf
	r, err := packet.Measure(o)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", *out)
	if *md != "" {
		return writeReport(r, *out, *md)
	}
	return nil
}

// uintFlag parses a flag into a uint32.
func uintFlag(dst *uint32) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseUint(s, 10, 32)
		*dst = uint32(v)
		return err
	}
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("run", "", "JSON file of a run")
	out := fs.String("out", "bench/PACKET.md", "markdown file to write")
	_ = fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var r packet.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("reading %s: %w", *in, err)
	}
	return writeReport(&r, *in, *out)
}

func writeReport(r *packet.Run, source, out string) error {
	if err := os.WriteFile(out, []byte(packet.Report(r, source)), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", out)
	return nil
}
