package kubelet

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// defaultPath is the PATH of every container: the lab's programs are the host's.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// podEnv holds the values a container's env can take from the pod through a fieldRef.
func podEnv(pod *corev1.Pod, hostIPs, podIPs []netip.Addr) map[string]string {
	fields := map[string]string{
		"metadata.name":           pod.Name,
		"metadata.namespace":      pod.Namespace,
		"metadata.uid":            string(pod.UID),
		"spec.nodeName":           pod.Spec.NodeName,
		"spec.serviceAccountName": pod.Spec.ServiceAccountName,
		"status.hostIP":           first(hostIPs),
		"status.hostIPs":          join(hostIPs),
		"status.podIP":            first(podIPs),
		"status.podIPs":           join(podIPs),
	}
	for k, v := range pod.Labels {
		fields[fmt.Sprintf("metadata.labels['%s']", k)] = v
	}
	for k, v := range pod.Annotations {
		fields[fmt.Sprintf("metadata.annotations['%s']", k)] = v
	}
	return fields
}

func first(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0].String()
}

func join(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

var labelField = regexp.MustCompile(`^metadata\.(labels|annotations)\['.*'\]$`)

// containerEnv is the container's environment as KEY=value lines: PATH and HOSTNAME, then the
// container's env in order, each value expanded against the variables before it. Only literal
// values and fieldRefs are supported: envFrom, configMap, secret and resource references fail
// the container with a reason, never start it without them.
func containerEnv(c *corev1.Container, podFields map[string]string) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported by the lab kubelet", c.Name)
	}
	vars := map[string]string{"PATH": defaultPath, "HOSTNAME": podFields["metadata.name"]}
	order := []string{"PATH", "HOSTNAME"}
	for _, e := range c.Env {
		var value string
		switch {
		case e.ValueFrom == nil:
			value = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			path := e.ValueFrom.FieldRef.FieldPath
			v, ok := podFields[path]
			if !ok && !labelField.MatchString(path) {
				return nil, fmt.Errorf("env %s: field %q is not supported by the lab kubelet", e.Name, path)
			}
			value = v
		default:
			return nil, fmt.Errorf("env %s: only values and fieldRefs are supported by the lab kubelet", e.Name)
		}
		if _, seen := vars[e.Name]; !seen {
			order = append(order, e.Name)
		}
		vars[e.Name] = value
	}
	env := make([]string, len(order))
	for i, name := range order {
		env[i] = name + "=" + vars[name]
	}
	return env, nil
}

// envMap turns KEY=value lines back into a map, for $(VAR) expansion in the command line.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
