package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// nftpolicy's backend owns its netlink socket, so the bytes it sends are counted from outside: the
// benchmark binary runs the same programming and the same events again (same seed, same order) in a
// child process under `strace -e trace=sendmsg`, and every successful sendmsg is one transaction
// (google/nftables sends a whole batch with one sendmsg per Flush). This pass is separate from the
// timed one, so tracing does not slow the figures down.

// CountNetlinkBytes returns the bytes sent for the full programming of params and then for each of
// rounds rounds of events (every kind, in generator.EventKinds order); an event that sends nothing
// counts 0.
func CountNetlinkBytes(params generator.Params, rounds int) ([]int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	trace, err := os.CreateTemp("", "nftpolicy-bench-strace-")
	if err != nil {
		return nil, err
	}
	trace.Close()
	defer os.Remove(trace.Name())
	var sentFlags []bool
	err = withNode(func(node *netlab.Node) error {
		args := []string{"-f", "-qq", "-e", "trace=sendmsg", "-e", "raw=sendmsg", "-e", "signal=none", "-o", trace.Name(),
			self, "netlink-bytes", "-netns", node.Path, "-rounds", strconv.Itoa(rounds)}
		args = append(args, ParamsArgs(params)...)
		cmd := exec.Command("strace", args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("running the traced pass: %w", err)
		}
		return json.Unmarshal(out, &sentFlags)
	})
	if err != nil {
		return nil, err
	}
	sizes, err := sendmsgSizes(trace.Name())
	if err != nil {
		return nil, err
	}
	want := 0
	for _, s := range sentFlags {
		if s {
			want++
		}
	}
	if want != len(sizes) {
		return nil, fmt.Errorf("%d transactions sent but %d sendmsg calls traced", want, len(sizes))
	}
	out := make([]int, len(sentFlags))
	next := 0
	for i, s := range sentFlags {
		if s {
			out[i] = sizes[next]
			next++
		}
	}
	return out, nil
}

// With raw=sendmsg, strace prints the arguments and the result in hexadecimal.
var sendmsgResult = regexp.MustCompile(`sendmsg\(.*\)\s*=\s*(0x[0-9a-f]+|\d+)`)

func sendmsgSizes(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var sizes []int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		if m := sendmsgResult.FindStringSubmatch(sc.Text()); m != nil {
			n, err := strconv.ParseInt(m[1], 0, 64)
			if err != nil {
				return nil, fmt.Errorf("reading the trace: %w", err)
			}
			sizes = append(sizes, int(n))
		}
	}
	return sizes, sc.Err()
}

// ParamsArgs renders the generator knobs that the command line carries.
func ParamsArgs(p generator.Params) []string {
	return []string{"-seed", strconv.FormatInt(p.Seed, 10), "-pods", strconv.Itoa(p.Pods), "-policies", strconv.Itoa(p.Policies),
		"-local-pods", strconv.Itoa(p.LocalPods), "-namespaces", strconv.Itoa(p.Namespaces), "-shape", string(p.Shape)}
}

// ReplayForTrace is the traced child's side: program the full table into the namespace at netnsPath,
// then the events, and report which Apply sent a transaction.
func ReplayForTrace(params generator.Params, rounds int, netnsPath string) ([]bool, error) {
	c, err := generator.Generate(params)
	if err != nil {
		return nil, err
	}
	backend, err := kernel.NewNetlinkBackend(netnsPath)
	if err != nil {
		return nil, err
	}
	defer backend.Close()
	applier := nft.NewApplier(backend)
	pl := NewPipeline(c.Snapshot)
	m, rs := pl.Compile()
	TargetPeers(c, m)
	res, err := applier.Apply(rs, nft.FullChanges())
	if err != nil {
		return nil, err
	}
	sent := []bool{!res.Unchanged()}
	for range rounds {
		for _, kind := range generator.EventKinds {
			step, err := pl.Next(c, kind, applier.Committed())
			if err != nil {
				return nil, err
			}
			res, err := applier.Apply(step.Ruleset, step.Changed)
			if err != nil {
				return nil, fmt.Errorf("applying %s: %w", strings.TrimSpace(step.Description), err)
			}
			sent = append(sent, !res.Unchanged())
		}
	}
	return sent, nil
}
