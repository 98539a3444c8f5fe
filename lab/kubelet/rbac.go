package kubelet

import rbacv1 "k8s.io/api/rbac/v1"

// PolicyRules are what Config.Client needs, for a ClusterRole bound to the kubelet's user: watch
// the pods of its node, write their status and delete them once their processes are gone.
func PolicyRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"update"}},
	}
}
