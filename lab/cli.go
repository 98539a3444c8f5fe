package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const usage = `usage: nftpolicy-lab COMMAND [flags]

commands:
  up        [--nodes N] [--ip-family F] [--cluster FILE] [--name NAME]  bring a lab up and keep it up until Ctrl-C
  down      [--name NAME | --all]                                      remove a lab, also one whose process died
  apply     [--name NAME] -f FILE                                      apply NetworkPolicy YAML to a running lab
  probe     [--name NAME] SRC DST PORT/PROTO                           one new connection, pods written namespace/pod
  matrix    [--name NAME] PORT/PROTO                                   probe every pair of pods of a running lab
  scenario  [--nodes N] [--ip-family F] FILE...                        run scenario files on a lab of their own
  demo                                                                 replay the guestbook tutorial

up, scenario and demo run the agent binary given by --agent PATH, by default the nftpolicy beside
nftpolicy-lab (make build puts both in bin/).
`

// commands are the lab's subcommands; each gets its arguments and returns the exit code.
var commands = map[string]func(ctx context.Context, args []string) int{
	"up":       cmdUp,
	"down":     cmdDown,
	"apply":    cmdApply,
	"probe":    cmdProbe,
	"matrix":   cmdMatrix,
	"scenario": cmdScenario,
	"demo":     cmdDemo,
}

// Main is the nftpolicy-lab command: args are its arguments, without the program name. SIGINT and SIGTERM cancel the command, which then removes what it made.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	run, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "nftpolicy-lab: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args[1:])
}

// labFlags are the flags of the commands that bring a lab up.
type labFlags struct {
	nodes     int
	family    string
	assets    string
	verbosity int
	agent     string
}

func (f *labFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.nodes, "nodes", DefaultNodes, "Number of nodes.")
	fs.StringVar(&f.family, "ip-family", FamilyIPv4, "Pod addresses: ipv4, ipv6 or dual.")
	fs.StringVar(&f.assets, "assets", "", "Directory of kube-apiserver and etcd (default $KUBEBUILDER_ASSETS or the setup cache).")
	fs.IntVar(&f.verbosity, "agent-v", 2, "Log verbosity of the agents.")
	fs.StringVar(&f.agent, "agent", "", "The agent binary each node runs (default: nftpolicy beside this executable).")
}

func (f *labFlags) options(name string, log io.Writer) Options {
	return Options{Name: name, Nodes: f.nodes, IPFamily: f.family, AssetsDir: f.assets, AgentVerbosity: f.verbosity, AgentPath: f.agent, Log: log}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("nftpolicy-lab "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// closeLab removes the lab and reports a failure to do so.
func closeLab(l *Lab) bool {
	if err := l.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "removing lab %s: %v\n", l.Name(), err)
		return false
	}
	return true
}

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
	l, err := Start(ctx, lf.options(*name, os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := 0
	if err := l.Setup(ctx, *cluster); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	} else {
		l.state.Ready = true
		if err := l.state.write(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		writePods(os.Stdout, l)
		fmt.Printf("\nLab %s is up. Try:\n", l.Name())
		fmt.Printf("  export KUBECONFIG=%s; kubectl get pods -A -o wide; kubectl get nodeenforcements\n", l.Kubeconfig())
		fmt.Printf("  nftpolicy-lab apply -f config/samples/networking_v1_networkpolicy_redis.yaml\n")
		if port, ok := firstPort(cluster); ok {
			fmt.Printf("  nftpolicy-lab matrix %d/%s\n", port.Port, port.Protocol)
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

func writePods(w io.Writer, l *Lab) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	refs := make([]string, 0, len(l.pods))
	for ref := range l.pods {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	fmt.Fprintf(w, "%-28s %-8s %s\n", "POD", "NODE", "IPS")
	for _, ref := range refs {
		p := l.pods[ref]
		var ips []string
		for _, a := range l.podAddrs(p.net) {
			ips = append(ips, a.String())
		}
		fmt.Fprintf(w, "%-28s %-8s %s\n", ref, p.node.name, strings.Join(ips, ","))
	}
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
		if names, err = Labs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if *name == "" {
		n, err := onlyLab()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		names = []string{n}
	}
	code := 0
	for _, n := range names {
		if err := Down(n); err != nil {
			fmt.Fprintf(os.Stderr, "removing lab %s: %v\n", n, err)
			code = 1
			continue
		}
		fmt.Printf("Removed lab %s\n", n)
	}
	return code
}

// onlyLab names the lab of this machine when there is exactly one.
func onlyLab() (string, error) {
	names, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", errors.New("no lab is running")
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("several labs (%s): choose one with --name", strings.Join(names, ", "))
}

func cmdScenario(ctx context.Context, args []string) int {
	fs := newFlagSet("scenario")
	var lf labFlags
	lf.register(fs)
	deadline := fs.Duration("deadline", scenario.DefaultDeadline, "How long one step may take to converge.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "nftpolicy-lab scenario: no scenario files")
		return 2
	}
	l, err := Start(ctx, lf.options("", os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := scenario.Options{Families: l.Families(), Deadline: *deadline}
	summary := scenario.RunFiles(ctx, l, fs.Args(), opts, os.Stdout)
	ok := closeLab(l)
	if !summary.OK() || !ok || ctx.Err() != nil {
		return 1
	}
	return 0
}

// timeSince formats an elapsed time for people.
func timeSince(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
