package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Load reads and parses the scenario file at path, whose name must be the scenario's name plus
// ".yaml".
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	base := filepath.Base(path)
	if want, ok := strings.CutSuffix(base, ".yaml"); !ok || want != s.Name {
		return nil, fmt.Errorf("parsing %s: name %q must equal the file name without .yaml", path, s.Name)
	}
	return s, nil
}

// Parse reads one scenario strictly: an unknown key, a reference to a pod or namespace the cluster
// does not have, a protocol other than TCP, UDP or SCTP, a port out of 1..65535, a deny pair that is
// not probed or an apply that does not hold NetworkPolicies is an error naming where it is.
func Parse(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty scenario")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("a scenario file holds exactly one YAML document")
	}
	if err := checkKeys(&root, scenarioType, ""); err != nil {
		return nil, err
	}
	var s Scenario
	if err := root.Decode(&s); err != nil {
		return nil, err
	}
	if s.Cluster == nil {
		s.Cluster = DefaultCluster()
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// UnmarshalYAML accepts a single expectation mapping as well as a list of them.
func (e *Expects) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var one Expect
		if err := n.Decode(&one); err != nil {
			return err
		}
		*e = Expects{one}
		return nil
	}
	var list []Expect
	if err := n.Decode(&list); err != nil {
		return err
	}
	*e = list
	return nil
}

// UnmarshalYAML accepts only the ways the format knows, so a misspelt via fails the file with its
// line instead of silently probing pod IPs.
func (v *Via) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch via := Via(n.Value); via {
		case ViaPod, ViaService:
			*v = via
			return nil
		}
	}
	return fmt.Errorf("line %d: via %q: want pod or service", n.Line, n.Value)
}

// UnmarshalYAML reads targetPort as written: a YAML integer is a port number, a string the name of
// a container port.
func (p *ServicePort) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Name       string    `yaml:"name"`
		Port       int       `yaml:"port"`
		TargetPort yaml.Node `yaml:"targetPort"`
		Protocol   string    `yaml:"protocol"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	*p = ServicePort{Name: raw.Name, Port: raw.Port, Protocol: raw.Protocol}
	tp := &raw.TargetPort
	switch {
	case tp.Kind == 0: // not written
	case tp.Kind == yaml.ScalarNode && tp.ShortTag() == "!!int":
		number, err := strconv.ParseInt(tp.Value, 0, 32)
		if err != nil {
			return fmt.Errorf("line %d: targetPort %q: %w", tp.Line, tp.Value, err)
		}
		p.TargetPort = intstr.FromInt32(int32(number))
	case tp.Kind == yaml.ScalarNode && tp.ShortTag() == "!!str":
		p.TargetPort = intstr.FromString(tp.Value)
	default:
		return fmt.Errorf("line %d: targetPort: want a port number or a port name", tp.Line)
	}
	return nil
}
