package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nftpolicy/nftpolicy/explain"
)

// The plugin finds agents by the DaemonSet's pod labels and port name: they must match.
func TestAgentSelectorMatchesTheDaemonSet(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var ds appsv1.DaemonSet
		if err := dec.Decode(&ds); err != nil {
			t.Fatalf("no DaemonSet in config/manager/manager.yaml: %v", err)
		}
		if ds.Kind != "DaemonSet" {
			continue
		}
		if !agentSelector.Matches(labels.Set(ds.Spec.Template.Labels)) {
			t.Errorf("the DaemonSet's pod labels %v do not match the plugin's selector %s", ds.Spec.Template.Labels, agentSelector)
		}
		found := false
		for _, c := range ds.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				found = found || p.Name == agentPortName
			}
		}
		if !found {
			t.Errorf("the DaemonSet's containers have no port named %q", agentPortName)
		}
		return
	}
}

func TestMainRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"explore", "a/b", "c/d", "80"},
		{"explain", "a/b", "c/d"},
		{"explain", "a/b", "c/d", "80/icmp"},
		{"explain", "a/b/c", "c/d", "80"},
		{"explain", "-o", "table", "a/b", "c/d", "80"},
		{"explain", "--family", "5", "a/b", "c/d", "80"},
	} {
		var stderr bytes.Buffer
		streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &stderr}
		if code := Main(context.Background(), args, streams); code != ExitError || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d and a message", args, code, stderr.String(), ExitError)
		}
	}
}

func TestExitCode(t *testing.T) {
	allowed := &explain.Report{Spec: explain.SpecAnswer{Allowed: true}}
	denied := &explain.Report{Spec: explain.SpecAnswer{Allowed: false, Ingress: &explain.DirectionAnswer{Direction: explain.Ingress, Allowed: false}},
		Dataplane: []explain.DataplaneAnswer{{Node: "n1", Direction: explain.Ingress, Verdict: explain.Drop}}}
	disagreeing := &explain.Report{Spec: explain.SpecAnswer{Allowed: false, Ingress: &explain.DirectionAnswer{Direction: explain.Ingress, Allowed: false}},
		Dataplane: []explain.DataplaneAnswer{{Node: "n1", Direction: explain.Ingress, Verdict: explain.Accept}}}
	drifted := &explain.Report{Spec: explain.SpecAnswer{Allowed: true},
		Dataplane: []explain.DataplaneAnswer{{Node: "n1", Direction: explain.Ingress, Verdict: explain.Accept, Drift: []string{"set peers_x: element missing"}}}}
	for _, c := range []struct {
		name    string
		reports []*explain.Report
		want    int
	}{
		{"allowed", []*explain.Report{allowed}, ExitAllowed},
		{"one backend denied", []*explain.Report{allowed, denied}, ExitDenied},
		{"the kernel accepts what the spec denies", []*explain.Report{denied, disagreeing}, ExitDrift},
		{"the kernel's table drifted", []*explain.Report{drifted}, ExitDrift},
	} {
		if got := exitCode(c.reports); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
	}
}
