// Package kubelet is the lab's kubelet stand-in for one node: it runs the pods bound to its node,
// writes their status, and serves the kubelet API that the API server calls for pods/exec,
// pods/log and pods/portforward.
//
// What it does, as a kubelet would:
//   - watches the Pods with spec.nodeName equal to its node (except the lab's own pods, which carry
//     Config.SkipAnnotation), creates a sandbox for each through the injected Sandboxes (a network
//     namespace with the pod's addresses), and runs every container's command and args as a process
//     inside that network namespace with the container's env;
//   - writes the pod status: phase, hostIPs, podIPs, conditions and container statuses; restarts a
//     container whose process exits according to the pod's restartPolicy;
//   - on a deletionTimestamp sends SIGTERM, then SIGKILL after the grace period (capped at
//     MaxGracePeriod), removes the sandbox and deletes the Pod with grace period 0;
//   - serves /exec, /containerLogs, /portForward and /healthz over HTTPS, to clients presenting a
//     certificate signed by the PKI's CA (the API server's kubelet client certificate).
//
// What it does not do: images are local programs (see Image), so a container is a plain process
// with no isolation beyond its network namespace: it shares the host's filesystem, mounts, PID and
// UTS namespaces (its hostname is the host's; $HOSTNAME is the pod's name), users and resources.
// Volumes (but the service account token, which is ignored), init containers, envFrom and env
// from ConfigMaps, Secrets or resources are not implemented: a pod that needs one fails with a
// reason saying so. Probes, resource limits and security contexts are ignored: a running
// container is ready. Exec with a TTY runs the command on a pseudo-terminal. A container's
// /etc/resolv.conf is the host's: there is no cluster DNS, so pods reach Services by ClusterIP.
//
// NetlabSandboxes makes the sandboxes out of a lab/netlab node; a hostNetwork pod runs in the
// node's own namespace.
//
// The streaming protocols (SPDY and WebSocket for exec, port forwarding) come from
// k8s.io/cri-streaming, the kubelet's own streaming library at the same release.
package kubelet
