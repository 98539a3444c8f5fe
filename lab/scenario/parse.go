package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
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
