package scenario

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sharedScenarios is the shared/scenarios directory beside the repository's root.
func sharedScenarios(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package directory, so no shared/scenarios to read")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared", "scenarios")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared scenarios are not checked out beside the repository: %v", err)
	}
	return shared
}

func sharedFile(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(sharedScenarios(t), name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared scenario %s is absent: %v", name, err)
	}
	return path
}

func TestLoadSharedScenarios(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(sharedScenarios(t), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no shared scenario files")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := Load(path); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadDefaultDenyIngressExample(t *testing.T) {
	s, err := Load(sharedFile(t, "default-deny-ingress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Cluster, DefaultCluster()) {
		t.Errorf("a file without cluster should get the default cluster, got %+v", s.Cluster)
	}
	if len(s.Steps) != 1 || len(s.Steps[0].Expect) != 1 {
		t.Fatalf("want 1 step with 1 expect, got %+v", s.Steps)
	}
	e := s.Steps[0].Expect[0]
	if e.Port != 81 || e.Protocol != ProtocolUDP || len(e.Deny) != 24 {
		t.Errorf("expect = %s with %d deny pairs, want UDP/81 with 24", e, len(e.Deny))
	}
	manifests, err := s.Steps[0].Manifests(IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	policies := manifests.NetworkPolicies
	if len(policies) != 1 || policies[0].Namespace != "x" || policies[0].Name != "deny-ingress" {
		t.Errorf("policies = %+v, want x/deny-ingress", policies)
	}
}

func TestLoadGuestbookExample(t *testing.T) {
	s, err := Load(sharedFile(t, "guestbook-redis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"default/guestbook-1", "default/guestbook-2", "default/guestbook-3", "default/redis-master",
		"default/redis-slave-1", "default/redis-slave-2", "default/busybox", "other/guestbook"}
	if got := s.Cluster.PodRefs(); !reflect.DeepEqual(got, want) {
		t.Errorf("pods = %v, want %v", got, want)
	}
	if got := s.Steps[2].Delete; !reflect.DeepEqual(got, []string{"default/redis-policy"}) {
		t.Errorf("step 3 delete = %v", got)
	}
}

func TestParseEveryKey(t *testing.T) {
	s, err := Load("testdata/every-key.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "every-key" || s.Upstream == "" || s.Description == "" {
		t.Errorf("name/description/upstream not read: %+v", s)
	}
	if want := []string{"ingress", "ip-block", "relabel", "sctp"}; !reflect.DeepEqual(s.Tags, want) {
		t.Errorf("tags = %v, want %v", s.Tags, want)
	}
	web := s.Cluster.Namespaces[0]
	wantFront := Pod{Name: "front", Labels: map[string]string{"app": "front"}, Ports: []Port{
		{Name: "http", Port: 80, Protocol: ProtocolTCP},
		{Port: 53, Protocol: ProtocolUDP},
		{Name: "assoc", Port: 9000, Protocol: ProtocolSCTP},
	}}
	if web.Name != "web" || web.Labels["team"] != "web" || !reflect.DeepEqual(web.Pods[0], wantFront) {
		t.Errorf("namespace web = %+v", web)
	}
	wantSteps := []Step{
		{Delete: []string{}, Apply: s.Steps[0].Apply, Relabel: []Relabel{}, Expect: Expects{
			{Port: 80, Protocol: ProtocolTCP, Deny: []string{"ops/admin -> web/back"}},
			{Port: 53, Protocol: ProtocolUDP, Deny: []string{}},
		}},
		{Relabel: []Relabel{{Kind: KindNamespace, Name: "ops", Labels: map[string]string{"team": "ops"}}},
			Expect: Expects{{Port: 80, Protocol: ProtocolTCP, Deny: []string{}}}},
		{Relabel: []Relabel{{Kind: KindPod, Name: "ops/admin", Labels: map[string]string{"role": "retired"}}},
			Expect: Expects{{Port: 80, Protocol: ProtocolTCP, Deny: []string{"ops/admin -> web/back"}}}},
		{Delete: []string{"web/allow-web"}, Expect: Expects{
			{Port: 80, Protocol: ProtocolTCP, Deny: []string{}},
			{Port: 9000, Protocol: ProtocolSCTP, Deny: []string{}},
		}},
	}
	if !reflect.DeepEqual(s.Steps, wantSteps) {
		t.Errorf("steps =\n%+v\nwant\n%+v", s.Steps, wantSteps)
	}
	if !strings.Contains(s.Steps[0].Apply, "{{cidr ops/admin 24}}") {
		t.Errorf("apply should keep its placeholders until a run resolves them:\n%s", s.Steps[0].Apply)
	}
}

func TestDefaultCluster(t *testing.T) {
	c := DefaultCluster()
	if got, want := len(c.PodRefs()), 9; got != want {
		t.Fatalf("%d pods, want %d", got, want)
	}
	for _, ns := range c.Namespaces {
		if ns.Labels["ns"] != ns.Name || len(ns.Labels) != 1 {
			t.Errorf("namespace %s labels = %v, want exactly ns=%s", ns.Name, ns.Labels, ns.Name)
		}
		for _, pod := range ns.Pods {
			if pod.Labels["pod"] != pod.Name || len(pod.Labels) != 1 {
				t.Errorf("pod %s/%s labels = %v", ns.Name, pod.Name, pod.Labels)
			}
			want := []Port{{"serve-80-tcp", 80, "TCP"}, {"serve-81-tcp", 81, "TCP"}, {"serve-80-udp", 80, "UDP"}, {"serve-81-udp", 81, "UDP"}}
			if !reflect.DeepEqual(pod.Ports, want) {
				t.Errorf("pod %s/%s ports = %v", ns.Name, pod.Name, pod.Ports)
			}
		}
	}
	// Each call is a fresh copy: a caller changing it cannot change the default.
	c.Namespaces[0].Pods[0].Labels["pod"] = "changed"
	if DefaultCluster().Namespaces[0].Pods[0].Labels["pod"] != "a" {
		t.Error("DefaultCluster shares its maps between calls")
	}
}

func TestLoadRequiresNameToMatchFile(t *testing.T) {
	data, err := os.ReadFile("testdata/every-key.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-name.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "must equal the file name") {
		t.Errorf("Load = %v, want an error about the file name", err)
	}
}

// minimal is a valid file to break one key at a time.
const minimal = `name: minimal
description: d
steps:
  - apply: ""
    expect: {port: 80, protocol: TCP, deny: ["x/b -> x/a"]}
`

func TestParseErrors(t *testing.T) {
	policy := func(spec string) string {
		return "name: p\ndescription: d\nsteps:\n  - apply: |\n      apiVersion: networking.k8s.io/v1\n      kind: NetworkPolicy\n" +
			"      metadata: {name: p, namespace: x}\n" + spec + "    expect: {port: 80, protocol: TCP}\n"
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", minimal + "owner: me\n", "owner: unknown key (line 6)"},
		{"unknown key in an expect mapping", strings.Replace(minimal, "deny:", "denny:", 1), "steps[0].expect.denny: unknown key"},
		{"unknown key in an expect list",
			"name: n\ndescription: d\nsteps:\n  - expect:\n      - {port: 80, protocol: TCP}\n      - {port: 81, protocl: TCP}\n",
			"steps[0].expect[1].protocl: unknown key"},
		{"unknown key in a cluster port",
			"name: n\ndescription: d\ncluster:\n  namespaces:\n    - name: a\n      pods:\n        - {name: p, ports: [{port: 1, protocol: TCP, nmae: x}]}\nsteps: [{}]\n",
			"cluster.namespaces[0].pods[0].ports[0].nmae: unknown key"},
		{"missing name", strings.Replace(minimal, "name: minimal\n", "", 1), "name: required"},
		{"name not kebab-case", strings.Replace(minimal, "name: minimal", "name: Minimal_File", 1), "not kebab-case"},
		{"missing description", strings.Replace(minimal, "description: d\n", "", 1), "description: required"},
		{"no steps", "name: n\ndescription: d\nsteps: []\n", "at least one step"},
		{"bad pod reference", strings.Replace(minimal, "x/b -> x/a", "x/b -> xa", 1), `reference "xa"`},
		{"pair without arrow", strings.Replace(minimal, "x/b -> x/a", "x/b x/a", 1), "want \"namespace/pod -> namespace/pod\""},
		{"unknown pod in a pair", strings.Replace(minimal, "x/b -> x/a", "x/d -> x/a", 1), "pod x/d is not in the cluster"},
		{"self pair", strings.Replace(minimal, "x/b -> x/a", "x/a -> x/a", 1), "self pairs are never probed"},
		{"deny pair not probed", strings.Replace(minimal, "port: 80", "port: 8080", 1), `pair "x/b -> x/a" is not probed: x/a does not serve TCP/8080`},
		{"bad protocol", strings.Replace(minimal, "protocol: TCP", "protocol: ICMP", 1), `"ICMP" is not TCP, UDP or SCTP`},
		{"lower-case protocol", strings.Replace(minimal, "protocol: TCP", "protocol: tcp", 1), `"tcp" is not TCP, UDP or SCTP`},
		{"missing protocol", strings.Replace(minimal, ", protocol: TCP", "", 1), "steps[0].expect[0].protocol: required"},
		{"port zero", strings.Replace(minimal, "port: 80", "port: 0", 1), "steps[0].expect[0].port: 0 is out of 1..65535"},
		{"port too high", strings.Replace(minimal, "port: 80", "port: 65536", 1), "out of 1..65535"},
		{"port not a number", strings.Replace(minimal, "port: 80", "port: http", 1), "cannot unmarshal"},
		{"second document", minimal + "---\nname: other\n", "exactly one YAML document"},
		{"empty file", "", "empty scenario"},
		{"relabel kind", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Service, name: x}]`, 1), `relabel[0].kind: "Service" is not Namespace or Pod`},
		{"relabel unknown pod", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Pod, name: x/q}]`, 1), `pod "x/q" is not in the cluster`},
		{"relabel pod without namespace", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Pod, name: a}]`, 1), `reference "a"`},
		{"relabel unknown namespace", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Namespace, name: w}]`, 1), `namespace "w" is not in the cluster`},
		{"relabel namespace name label", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Namespace, name: x, labels: {kubernetes.io/metadata.name: y}}]`, 1), "kubernetes.io/metadata.name is always \"x\""},
		{"bad label value", strings.Replace(minimal, `apply: ""`, `relabel: [{kind: Pod, name: x/a, labels: {pod: "not valid!"}}]`, 1), "relabel[0].labels"},
		{"bad delete reference", strings.Replace(minimal, `apply: ""`, `delete: [deny-all]`, 1), `delete[0]: reference "deny-all"`},
		{"delete in unknown namespace", strings.Replace(minimal, `apply: ""`, `delete: [w/deny-all]`, 1), `namespace "w" is not in the cluster`},
		{"unknown field in a policy", policy("      spec: {podSelectr: {}}\n"), `steps[0].apply: document 0: json: unknown field "podSelectr"`},
		{"policy in an unknown namespace", strings.Replace(policy("      spec: {}\n"), "namespace: x", "namespace: w", 1), `namespace "w" is not in the cluster`},
		{"not a NetworkPolicy", strings.Replace(policy("      spec: {}\n"), "kind: NetworkPolicy", "kind: Pod", 1), "only networking.k8s.io/v1 NetworkPolicy"},
		{"policy without namespace", strings.Replace(policy("      spec: {}\n"), ", namespace: x", "", 1), "needs metadata.name and metadata.namespace"},
		{"placeholder for an unknown pod", policy("      spec: {ingress: [{from: [{ipBlock: {cidr: \"{{hostcidr x/q}}\"}}]}]}\n"), `placeholder {{hostcidr x/q}}: pod "x/q" is not in the cluster`},
		{"unknown placeholder", policy("      spec: {ingress: [{from: [{ipBlock: {cidr: \"{{net x/a}}\"}}]}]}\n"), `unknown placeholder "net"`},
		{"unterminated placeholder", policy("      spec:\n        ingress:\n          - from:\n              - ipBlock: {cidr: \"{{ip x/a\"\n"), "malformed placeholder"},
		{"placeholder closed by flow braces", policy("      spec: {ingress: [{from: [{ipBlock: {cidr: \"{{ip x/a\"}}]}]}\n"), `reference "x/a\""`},
		{"duplicate pod", "name: n\ndescription: d\ncluster:\n  namespaces:\n    - {name: a, pods: [{name: p}, {name: p}]}\nsteps: [{}]\n", `pod "p" is listed twice`},
		{"cluster without namespaces", "name: n\ndescription: d\ncluster: {namespaces: []}\nsteps: [{}]\n", "at least one namespace"},
		{"duplicate key", minimal + "name: again\n", `mapping key "name" already defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("name: n\ndescription: d\nsteps:\n  - expect: {port: 0, protocol: ICMP, dney: []}\n    aply: x\n"))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, want := range []string{"steps[0].expect.dney: unknown key", "steps[0].aply: unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
