package selectors

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// namespaceNameLabel is set by the API server on every namespace to the namespace's name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// parsedSelector is a label selector together with a canonical rendering: two selectors that are
// written alike (whatever the order of matchLabels, matchExpressions and values) render alike.
type parsedSelector struct {
	selector  labels.Selector
	canonical string // "{}" selects everything
}

// parseSelector converts a present LabelSelector. An invalid selector is an error; callers report
// it as a Problem and let it match nothing.
func parseSelector(ls *metav1.LabelSelector) (parsedSelector, error) {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return parsedSelector{}, fmt.Errorf("parsing label selector: %w", err)
	}
	reqs, _ := sel.Requirements()
	parts := make([]string, 0, len(reqs))
	for i := range reqs {
		parts = append(parts, reqs[i].String()) // values inside in/notin are rendered sorted
	}
	sort.Strings(parts)
	return parsedSelector{selector: sel, canonical: "{" + strings.Join(parts, ",") + "}"}, nil
}

// NamespaceLabels are the labels a namespaceSelector is matched against. The API server guarantees
// kubernetes.io/metadata.name, so it is added when the snapshot lacks it (also for a namespace whose
// object the snapshot does not hold yet).
func NamespaceLabels(name string, stored map[string]string) labels.Set {
	set := make(labels.Set, len(stored)+1)
	for k, v := range stored {
		set[k] = v
	}
	if _, ok := set[namespaceNameLabel]; !ok {
		set[namespaceNameLabel] = name
	}
	return set
}

// labelsOf is the label set a pod selector is matched against.
func labelsOf(p *Pod) labels.Set { return labels.Set(p.Labels) }
