package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// Variant is an extra process measured after its sync against the same loaded API server as the agent
// and the baseline: another build, environment or flags, to tell what one change is worth.
type Variant struct {
	Name string   `json:"name"`
	Kind string   `json:"kind"`          // "agent" or "baseline"
	Bin  string   `json:"bin,omitempty"` // default: the run's agent, or this command's baseline mode
	Env  []string `json:"env,omitempty"`
	Args []string `json:"args,omitempty"`
}

// VariantFigures are a variant's figures after its sync.
type VariantFigures struct {
	Variant
	Figures ProcessFigures `json:"figures"`
}

// parseVariant reads NAME:KIND[:bin=PATH][:env=K=V][:arg=ARG]..., e.g.
// "no-watchlist:baseline:env=KUBE_FEATURE_WatchListClient=false".
func parseVariant(s string) (Variant, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(validation.IsDNS1123Label(parts[0])) > 0 || (parts[1] != "agent" && parts[1] != "baseline") {
		return Variant{}, fmt.Errorf("variant %q is not NAME:agent|baseline[:bin=PATH][:env=K=V][:arg=ARG], with any number of the optional parts", s)
	}
	v := Variant{Name: parts[0], Kind: parts[1]}
	for _, p := range parts[2:] {
		key, value, _ := strings.Cut(p, "=")
		switch key {
		case "bin":
			v.Bin = value
		case "env":
			v.Env = append(v.Env, value)
		case "arg":
			v.Args = append(v.Args, value)
		default:
			return Variant{}, fmt.Errorf("variant %q: unknown part %q (bin=, env= or arg=)", s, p)
		}
	}
	return v, nil
}

// measureVariant runs one variant until it synced, samples it and stops it. An agent variant programs
// a network namespace of its own, with the local pods' interfaces of the generated cluster c, as the
// main agent does: another build of the agent (bin=) is measured under the same conditions.
func (r *runner) measureVariant(ctx context.Context, cp *controlPlane, c *generator.Cluster, v Variant) (VariantFigures, error) {
	fig := VariantFigures{Variant: v}
	var spec childSpec
	switch v.Kind {
	case "agent":
		ns, err := addNetns(fmt.Sprintf("nftpolicy-mem-%d-%s", os.Getpid(), v.Name))
		if err != nil {
			return fig, err
		}
		defer func() {
			if err := ns.remove(); err != nil {
				r.logf("%v", err)
			}
		}()
		if err := ns.addPodInterfaces(localPodAddrs(c)); err != nil {
			return fig, err
		}
		bin := v.Bin
		if bin == "" {
			bin = r.agentPath
		}
		spec = r.agentSpec("variant "+v.Name, bin, cp, ns.path())
	default:
		bin := v.Bin
		if bin == "" {
			self, err := os.Executable()
			if err != nil {
				return fig, err
			}
			bin = self
		}
		spec = r.baselineSpec("variant "+v.Name, bin, cp)
	}
	spec.argv = append(spec.argv, v.Args...)
	spec.env = append(spec.env, v.Env...) // a later GOGC= wins
	vc, err := startChild(spec, filepath.Join(r.logDir, fmt.Sprintf("variant-%s-%d.log", v.Name, r.scaleIndex)))
	if err != nil {
		return fig, err
	}
	defer vc.stop()
	fig.Figures, err = r.afterSync(ctx, vc, cp, "variant-"+v.Name, fmt.Sprintf("%s %s %s", strings.Join(v.Env, " "), spec.argv[0], strings.Join(v.Args, " ")))
	return fig, err
}

// deployedMemory is how the DaemonSet an operator installs runs the agent's memory: limits.memory of
// the agent's container and the GOGC of its environment ("" when unset).
type deployedMemory struct {
	limit, gogc string
}

// daemonSetMemory reads deployedMemory from config/manager/manager.yaml, so that the measured agent
// runs as deployed.
func daemonSetMemory(repoRoot string) (deployedMemory, error) {
	path := filepath.Join(repoRoot, "config", "manager", "manager.yaml")
	f, err := os.Open(path)
	if err != nil {
		return deployedMemory{}, err
	}
	defer f.Close()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if err != nil {
			return deployedMemory{}, fmt.Errorf("finding the agent's DaemonSet in %s: %w", path, err)
		}
		var ds appsv1.DaemonSet
		if err := yaml.Unmarshal(doc, &ds); err != nil || ds.Kind != "DaemonSet" {
			continue
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name != "agent" {
				continue
			}
			var d deployedMemory
			if q, ok := c.Resources.Limits["memory"]; ok {
				d.limit = q.String()
			}
			for _, e := range c.Env {
				if e.Name == "GOGC" {
					d.gogc = e.Value
				}
			}
			return d, nil
		}
		return deployedMemory{}, fmt.Errorf("%s has no agent container", path)
	}
}
