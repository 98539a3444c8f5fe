// Command nftpolicy-lab runs a NetworkPolicy lab on one machine: a real kube-apiserver and etcd,
// network namespaces for nodes and pods, and one nftpolicy agent per node (the nftpolicy binary
// beside this one, or --agent). It is a developer tool, built apart from the agent so that the
// DaemonSet's image carries none of it; package lab does the work, this command parses the
// arguments and reports.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

const usage = `usage: nftpolicy-lab COMMAND [flags]

commands:
  up        [--nodes N] [--ip-family F] [--cluster FILE] [--name NAME]  bring a lab up and keep it up until Ctrl-C
            [--fail-closed] [--ip-report-delay D] [--proxy-mode M] [--drop-log L]
  down      [--name NAME | --all]                                      remove a lab, also one whose process died
  apply     [--name NAME] -f FILE                                      apply NetworkPolicy YAML to a running lab
  probe     [--name NAME] SRC DST PORT/PROTO                           one new connection, pods written namespace/pod
  matrix    [--name NAME] PORT/PROTO                                   probe every pair of pods of a running lab
  explain   [--name NAME] SRC DST PORT[/PROTO] [-o text|json|yaml]     why a connection is allowed or denied (kubectl nftpolicy explain)
  droplog   [--name NAME] [--node NODE] [--follow]                     print the agents' drop log, JSON lines
  scenario  [--nodes N] [--ip-family F] [--via V] FILE...              run scenario files on a lab of their own
  demo                                                                 replay the guestbook tutorial
  upstream  [--ip-family F[,F]] [--e2e PATH] [--report FILE]             run upstream's NetworkPolicy e2e specs, a lab per family

up, scenario and demo run the agent binary given by --agent PATH, by default the nftpolicy beside
nftpolicy-lab (make build puts both in bin/), and a kube-proxy per node in --proxy-mode nftables
(the default), iptables or ipvs. Their agents run with --drop-log L (off, namespace (the default:
only namespaces annotated nftpolicy.io/log=deny|all log), deny or all) and write the lines to a file
in the lab's state directory that droplog reads.
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
	"upstream": cmdUpstream,
	"explain":  cmdExplain,
	"droplog":  cmdDropLog,
}

// main runs the command its first argument names. SIGINT and SIGTERM cancel the command, which then
// removes what it made.
func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	run, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "nftpolicy-lab: unknown command %q\n\n%s", args[0], usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, args[1:])
	stop()
	os.Exit(code)
}

// labFlags are the flags of the commands that bring a lab up.
type labFlags struct {
	nodes     int
	family    string
	assets    string
	verbosity int
	agent     string
	// failClosed and ipReportDelay: see lab.Options.
	failClosed    bool
	ipReportDelay time.Duration
	proxyMode     string
	dropLog       string
}

func (f *labFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.nodes, "nodes", lab.DefaultNodes, "Number of nodes.")
	fs.StringVar(&f.family, "ip-family", lab.FamilyIPv4, "Pod addresses: ipv4, ipv6 or dual.")
	fs.StringVar(&f.assets, "assets", "", "Directory of kube-apiserver and etcd (default $KUBEBUILDER_ASSETS or the setup cache).")
	fs.IntVar(&f.verbosity, "agent-v", 2, "Log verbosity of the agents.")
	fs.StringVar(&f.agent, "agent", "", "The agent binary each node runs (default: nftpolicy beside this executable).")
	fs.BoolVar(&f.failClosed, "fail-closed", false, "Run the agents in the fail-closed mode (--pod-interface-prefix="+netlab.HostIfnamePrefix+", the lab's pod interfaces).")
	fs.StringVar(&f.proxyMode, "proxy-mode", lab.ProxyModeNFTables, "kube-proxy's mode on every node: nftables, iptables or ipvs.")
	fs.StringVar(&f.dropLog, "drop-log", lab.DefaultDropLog, "The agents' --drop-log: off, namespace (only namespaces annotated nftpolicy.io/log=deny|all), deny or all.")
	fs.DurationVar(&f.ipReportDelay, "ip-report-delay", 0, "How long the lab, as kubelet, waits between a pod's network being up and reporting its IPs.")
}

func (f *labFlags) options(name string, log io.Writer) lab.Options {
	return lab.Options{Name: name, Nodes: f.nodes, IPFamily: f.family, AssetsDir: f.assets, AgentVerbosity: f.verbosity, AgentPath: f.agent,
		FailClosed: f.failClosed, IPReportDelay: f.ipReportDelay, ProxyMode: f.proxyMode, DropLog: f.dropLog, Log: log}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("nftpolicy-lab "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// closeLab removes the lab and reports a failure to do so.
func closeLab(l *lab.Lab) bool {
	if err := l.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "removing lab %s: %v\n", l.Name(), err)
		return false
	}
	return true
}
