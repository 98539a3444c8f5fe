// Package repo holds tests about the repository itself rather than about a package of the product.
package repo

import (
	"os"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// lintConfig is the part of .golangci.yml the test reads.
type lintConfig struct {
	Linters struct {
		Enable     []string `json:"enable"`
		Exclusions struct {
			Rules []struct {
				Path    string   `json:"path"`
				Linters []string `json:"linters"`
			} `json:"rules"`
		} `json:"exclusions"`
	} `json:"linters"`
}

// Every linter an exclusion rule names must be an enabled one: a misindented list item reads as one
// name ("dupl - gocyclo") that golangci-lint accepts and matches nothing, so the exclusion silently
// does not apply.
func TestLintExclusionsNameEnabledLinters(t *testing.T) {
	b, err := os.ReadFile("../../.golangci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg lintConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("parsing .golangci.yml: %v", err)
	}
	if len(cfg.Linters.Enable) == 0 || len(cfg.Linters.Exclusions.Rules) == 0 {
		t.Fatalf("no enabled linters or no exclusion rules read: %+v", cfg.Linters)
	}
	for _, rule := range cfg.Linters.Exclusions.Rules {
		for _, name := range rule.Linters {
			if !slices.Contains(cfg.Linters.Enable, name) {
				t.Errorf("exclusion for %q names %q, which is not an enabled linter", rule.Path, name)
			}
		}
	}
}
