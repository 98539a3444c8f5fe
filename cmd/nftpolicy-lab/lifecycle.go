package main

// The commands that run a lab in this process (up, scenario, demo: they remove it when they end)
// and down, which removes a lab whatever became of its process.

import (
	"context"
	"fmt"
	"os"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

func cmdUp(ctx context.Context, args []string) int {
	fs := newFlagSet("up")
	var lf labFlags
	lf.register(fs)
	name := fs.String("name", "", "Name of the lab (default: generated).")
	clusterFile := fs.String("cluster", "", "A scenario file whose cluster to create (default: namespaces x, y, z with pods a, b, c).")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	cluster := scenario.DefaultCluster()
	if *clusterFile != "" {
		s, err := scenario.Load(*clusterFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cluster = s.Cluster
	}
	l, err := lab.Start(ctx, lf.options(*name, os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := 0
	if err := l.Setup(ctx, *cluster); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	} else {
		if err := l.MarkUp(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		l.WritePods(os.Stdout)
		fmt.Printf("\nLab %s is up. Try:\n", l.Name())
		fmt.Printf("  export KUBECONFIG=%s; kubectl get pods -A -o wide; kubectl get nodeenforcements\n", l.Kubeconfig())
		fmt.Printf("  nftpolicy-lab apply -f config/samples/networking_v1_networkpolicy_redis.yaml\n")
		if port, ok := firstPort(cluster); ok {
			fmt.Printf("  nftpolicy-lab matrix %d/%s\n", port.Port, port.Protocol)
		}
		if lf.dropLog != lab.DropLogOff {
			fmt.Printf("  kubectl annotate namespace NAMESPACE nftpolicy.io/log=deny; nftpolicy-lab droplog --follow\n")
		}
		fmt.Printf("Ctrl-C (or `nftpolicy-lab down --name %s`) removes it.\n", l.Name())
		<-ctx.Done()
		fmt.Println("Removing the lab")
	}
	if !closeLab(l) {
		code = 1
	}
	return code
}

// firstPort is a port some pod of c serves, for the hint `lab up` prints.
func firstPort(c *scenario.ClusterSpec) (scenario.Port, bool) {
	for _, ns := range c.Namespaces {
		for _, pod := range ns.Pods {
			for _, port := range pod.Ports {
				if port.Protocol != scenario.ProtocolSCTP {
					return port, true
				}
			}
		}
	}
	return scenario.Port{}, false
}

func cmdDown(_ context.Context, args []string) int {
	fs := newFlagSet("down")
	name := fs.String("name", "", "The lab to remove (default: the only one).")
	all := fs.Bool("all", false, "Remove every lab of this machine.")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	names := []string{*name}
	if *all {
		var err error
		if names, err = lab.Labs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if *name == "" {
		n, err := lab.OnlyLab()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		names = []string{n}
	}
	code := 0
	for _, n := range names {
		if err := lab.Down(n); err != nil {
			fmt.Fprintf(os.Stderr, "removing lab %s: %v\n", n, err)
			code = 1
			continue
		}
		fmt.Printf("Removed lab %s\n", n)
	}
	return code
}

// The values of `scenario --via`.
const (
	viaPod     = "pod"
	viaService = "service"
	viaBoth    = "both"
)

func cmdScenario(ctx context.Context, args []string) int {
	fs := newFlagSet("scenario")
	var lf labFlags
	lf.register(fs)
	deadline := fs.Duration("deadline", scenario.DefaultDeadline, "How long one step may take to converge.")
	via := fs.String("via", viaPod, "How an expect without a via key reaches its destinations: pod (their IPs), service (their own Services) or both.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := scenario.Options{Deadline: *deadline}
	switch *via {
	case viaPod:
	case viaService:
		opts.DefaultVia = scenario.ViaService
	case viaBoth:
		opts.AlsoViaService = true
	default:
		fmt.Fprintf(os.Stderr, "nftpolicy-lab scenario: --via %q: want pod, service or both\n", *via)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "nftpolicy-lab scenario: no scenario files")
		return 2
	}
	l, err := lab.Start(ctx, lf.options("", os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts.Families = l.Families()
	summary := scenario.RunFiles(ctx, l, fs.Args(), opts, os.Stdout)
	ok := closeLab(l)
	if !summary.OK() || !ok || ctx.Err() != nil {
		return 1
	}
	return 0
}

func cmdDemo(ctx context.Context, args []string) int {
	fs := newFlagSet("demo")
	var lf labFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	l, err := lab.Start(ctx, lf.options("", os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := 0
	if err := lab.RunDemo(ctx, l, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		code = 1
	}
	if !closeLab(l) {
		code = 1
	}
	return code
}
