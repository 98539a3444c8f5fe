package controllers

// SnapshotOf lets the external tests resolve the cluster in full, to compare with the agent's
// incremental result.
var SnapshotOf = snapshot
