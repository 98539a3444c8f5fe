package selectors

// Resolve computes which local pods of s.Node are isolated in which direction and what each of
// them allows: the Model of a new Resolver loaded with s. The same Snapshot, in any order, yields
// a deeply equal Model.
func Resolve(s *Snapshot) *Model {
	r := NewResolver(s.Node)
	r.Load(s)
	m, _ := r.Model()
	return m
}
