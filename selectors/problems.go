package selectors

import (
	"cmp"
	"slices"
	"strings"
)

// problemSet collects problems without repeats.
type problemSet map[Problem]struct{}

// sorted orders problems by policy, field, then message; nil when there are none.
func (ps problemSet) sorted() []Problem {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, 0, len(ps))
	for p := range ps {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(comparePolicyRefs(a.Policy, b.Policy), strings.Compare(a.Field, b.Field), strings.Compare(a.Message, b.Message))
	})
	return out
}

// comparePolicyRefs orders policies by namespace, then name.
func comparePolicyRefs(a, b PolicyRef) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
