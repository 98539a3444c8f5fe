package scenario

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	scenarioType = reflect.TypeFor[Scenario]()
	expectsType  = reflect.TypeFor[Expects]()
	expectType   = reflect.TypeFor[Expect]()
	// targetPortType is read by ServicePort.UnmarshalYAML, which reports its own errors.
	targetPortType = reflect.TypeFor[intstr.IntOrString]()
)

// checkKeys walks a YAML tree beside the Go type it decodes into and reports every mapping key
// that type does not have, with its path (steps[1].expect[0].prot) and line. Type mismatches are
// left to the decoder, which reports them with their line.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return checkKeys(n.Content[0], t, path)
	case yaml.AliasNode:
		return checkKeys(n.Alias, t, path)
	}
	switch {
	case t == targetPortType:
		return nil
	case t == expectsType && n.Kind == yaml.MappingNode:
		// The one-mapping spelling of expect.
		return checkKeys(n, expectType, path)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			keyPath := joinPath(path, key)
			field, ok := fields[key]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key (line %d)", keyPath, n.Content[i].Line))
				continue
			}
			errs = append(errs, checkKeys(n.Content[i+1], field, keyPath))
		}
		return errors.Join(errs...)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		var errs []error
		for i, item := range n.Content {
			errs = append(errs, checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)))
		}
		return errors.Join(errs...)
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, checkKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value)))
		}
		return errors.Join(errs...)
	}
	return nil
}

// yamlFields maps the YAML keys of a struct to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
