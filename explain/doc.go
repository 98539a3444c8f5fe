// Package explain answers "why is this connection allowed or denied?".
//
// The spec answer (Explain) reads the API objects with the same selectors code the agent compiles
// its ruleset from: per direction, whether the pod is isolated and by which policies, the rule,
// peer and port that admit the connection, or why each candidate rule does not. The dataplane
// answer (DataplaneAnswer) is the path of the same packet through a node's table as the kernel
// holds it; it is filled elsewhere and only carried and rendered here. A Report puts both together
// and says whether they agree.
//
// The types are the output of `kubectl nftpolicy explain -o json|yaml`: their field names are
// stable.
package explain
