package selectors

import "sort"

func (r *resolver) problem(ref PolicyRef, field, message string) {
	r.problems[Problem{Policy: ref, Field: field, Message: message}] = struct{}{}
}

// sortedProblems orders problems by policy, field, then message.
func (r *resolver) sortedProblems() []Problem {
	if len(r.problems) == 0 {
		return nil
	}
	out := make([]Problem, 0, len(r.problems))
	for p := range r.problems {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Policy != b.Policy {
			if a.Policy.Namespace != b.Policy.Namespace {
				return a.Policy.Namespace < b.Policy.Namespace
			}
			return a.Policy.Name < b.Policy.Name
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
	return out
}
