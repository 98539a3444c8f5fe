package main

// The commands that attach to a lab another process keeps up (`nftpolicy-lab up`).

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nftpolicy/nftpolicy/explain/plugin"
	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

func cmdApply(ctx context.Context, args []string) int {
	fs := newFlagSet("apply")
	name := fs.String("name", "", "The lab (default: the only one).")
	file := fs.String("f", "", "NetworkPolicy manifests, multi-document YAML; - reads stdin.")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *file == "" {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab apply [--name NAME] -f FILE")
		return 2
	}
	a, err := lab.Attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var data []byte
	if *file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	policies, err := scenario.ParsePolicies(string(data))
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading %s: %v\n", *file, err)
		return 1
	}
	if len(policies) == 0 {
		fmt.Fprintf(os.Stderr, "%s holds no NetworkPolicy\n", *file)
		return 1
	}
	for _, p := range policies {
		if err := a.ApplyPolicy(ctx, p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("networkpolicy %s/%s applied\n", p.Namespace, p.Name)
	}
	return 0
}

func cmdProbe(ctx context.Context, args []string) int {
	fs := newFlagSet("probe")
	name := fs.String("name", "", "The lab (default: the only one).")
	family := fs.String("family", "", "ipv4 or ipv6 (default: the destination's primary address).")
	if err := fs.Parse(args); err != nil || fs.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab probe [--name NAME] SRC DST PORT/PROTO   (pods as namespace/pod)")
		return 2
	}
	port, proto, err := parsePortProto(fs.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := lab.Attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	ok, err := a.Probe(ctx, src, dst, port, proto, *family)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !ok {
		fmt.Printf("%s -> %s %d/%s: blocked (no answer within %s)\n", src, dst, port, proto, lab.ProbeTimeout)
		return 1
	}
	fmt.Printf("%s -> %s %d/%s: allowed\n", src, dst, port, proto)
	return 0
}

func cmdMatrix(ctx context.Context, args []string) int {
	fs := newFlagSet("matrix")
	name := fs.String("name", "", "The lab (default: the only one).")
	family := fs.String("family", "", "ipv4 or ipv6 (default: each destination's primary address).")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab matrix [--name NAME] PORT/PROTO")
		return 2
	}
	port, proto, err := parsePortProto(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := lab.Attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := a.Matrix(ctx, port, proto, *family)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%d/%s, rows are sources, columns destinations:\n", port, proto)
	m.Write(os.Stdout)
	if m.Failed() {
		return 1
	}
	return 0
}

// cmdDropLog prints the JSON lines of the drop logs of the lab's agents.
func cmdDropLog(ctx context.Context, args []string) int {
	fs := newFlagSet("droplog")
	name := fs.String("name", "", "The lab (default: the only one).")
	node := fs.String("node", "", "Only this node's agent (default: every node's, node by node).")
	follow := fs.Bool("follow", false, "Keep printing new lines until Ctrl-C.")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab droplog [--name NAME] [--node NODE] [--follow]")
		return 2
	}
	a, err := lab.Attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.DropLog(ctx, *node, *follow, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// parsePortProto reads "80/TCP" (the protocol defaults to TCP).
func parsePortProto(s string) (int, string, error) {
	portText, proto, found := strings.Cut(s, "/")
	if !found {
		proto = scenario.ProtocolTCP
	}
	proto = strings.ToUpper(proto)
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return 0, "", fmt.Errorf("port %q: want PORT/PROTO such as 80/TCP", s)
	}
	if proto != scenario.ProtocolTCP && proto != scenario.ProtocolUDP {
		return 0, "", fmt.Errorf("protocol %q: the lab probes TCP and UDP", proto)
	}
	return port, proto, nil
}

// cmdExplain is `kubectl nftpolicy explain` with the lab's kubeconfig.
func cmdExplain(ctx context.Context, args []string) int {
	name := ""
	if len(args) >= 2 && args[0] == "--name" {
		name, args = args[1], args[2:]
	}
	a, err := lab.Attach(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return plugin.ExitError
	}
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	return plugin.Main(ctx, append([]string{"explain", "--kubeconfig", a.Kubeconfig()}, args...), streams)
}
