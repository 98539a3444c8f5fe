package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// servicesFile is a custom cluster with Services: web serves "http" on 8080 in web-1 and on 9090 in
// web-2, so the Service's named targetPort resolves to a different number on each backend.
const servicesFile = `name: services
description: d
cluster:
  namespaces:
    - name: shop
      pods:
        - {name: web-1, labels: {app: web}, ports: [{name: http, port: 8080, protocol: TCP}]}
        - {name: web-2, labels: {app: web}, ports: [{name: http, port: 9090, protocol: TCP}]}
        - {name: client, labels: {app: client}}
      services:
        - name: web
          selector: {app: web}
          ports:
            - {name: http, port: 80, targetPort: http, protocol: TCP}
            - {name: alt, port: 81, targetPort: 8080, protocol: TCP}
        - name: nobody
          selector: {app: none}
          ports: [{port: 80, protocol: UDP}]
steps:
  - expect:
      - {port: 8080, protocol: TCP, via: service}
      - {port: 9090, protocol: TCP, via: pod}
      - {port: 8080, protocol: TCP}
`

func TestParseServicesAndVia(t *testing.T) {
	s := mustParse(t, servicesFile)
	shop, _ := s.Cluster.Namespace("shop")
	if len(shop.Services) != 2 {
		t.Fatalf("services = %+v", shop.Services)
	}
	web := shop.Services[0]
	if got := web.Ports[0].TargetPort; got != intstr.FromString("http") {
		t.Errorf("targetPort by name = %#v", got)
	}
	if got := web.Ports[1].TargetPort; got != intstr.FromInt32(8080) {
		t.Errorf("targetPort by number = %#v", got)
	}
	if got := shop.Services[1].Ports[0].TargetPort; got != (intstr.IntOrString{}) {
		t.Errorf("targetPort not written = %#v, want the zero value (the port itself)", got)
	}
	vias := []Via{}
	for _, e := range s.Steps[0].Expect {
		vias = append(vias, e.Via)
	}
	if want := []Via{ViaService, ViaPod, ViaDefault}; strings.Join(viaStrings(vias), ",") != strings.Join(viaStrings(want), ",") {
		t.Errorf("vias = %q, want %q", vias, want)
	}
}

func viaStrings(vias []Via) []string {
	out := make([]string, len(vias))
	for i, v := range vias {
		out[i] = string(v)
	}
	return out
}

func TestParseServiceErrors(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(servicesFile, old) {
			t.Fatalf("servicesFile lacks %q", old)
		}
		return strings.Replace(servicesFile, old, new, 1)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown via", replace("via: service", "via: clusterip"), `line 21: via "clusterip": want pod or service`},
		{"via not a string", replace("via: service", "via: [service]"), `line 21: via`},
		{"named targetPort nobody defines", replace("targetPort: http", "targetPort: https"),
			`services[0].ports[0].targetPort: no pod that Service shop/web selects defines a TCP port named "https"`},
		{"named targetPort of another protocol", replace("targetPort: http, protocol: TCP", "targetPort: http, protocol: UDP"),
			`defines a UDP port named "http"`},
		{"named targetPort not a port name", replace("targetPort: http", "targetPort: Web_Port"), `targetPort: "Web_Port"`},
		{"targetPort out of range", replace("targetPort: 8080", "targetPort: 70000"), "targetPort: 70000 is out of 1..65535"},
		{"targetPort neither number nor name", replace("targetPort: 8080", "targetPort: {port: 8080}"), "targetPort: want a port number or a port name"},
		{"service name not a DNS label", replace("- name: web\n", "- name: web.shop\n"), `services[0].name: "web.shop"`},
		{"service name of a pod's own Service", replace("- name: nobody", "- name: svc-client"), `"svc-client" is the name of the Service the lab gives pod shop/client`},
		{"service without selector", replace("selector: {app: none}", "selector: {}"), "services[1].selector: required"},
		{"service without ports", replace("ports: [{port: 80, protocol: UDP}]", "ports: []"), "services[1].ports: at least one port is required"},
		{"unnamed port of several", replace("{name: alt, ", "{"), "services[0].ports[1].name: required when a Service has more than one port"},
		{"port listed twice", replace("port: 81, targetPort", "port: 80, targetPort"), "TCP/80 is listed twice"},
		{"service port without protocol", replace("port: 80, protocol: UDP", "port: 80"), "services[1].ports[0].protocol: required"},
		{"unknown service key", replace("selector: {app: none}", "selectr: {app: none}"), "cluster.namespaces[0].services[1].selectr: unknown key"},
		{"pod sets the lab's label", replace("labels: {app: client}", "labels: {app: client, lab.nftpolicy.io/pod: web-1}"),
			"lab.nftpolicy.io/pod belongs to the lab"},
		{"relabel sets the lab's label", replace("  - expect:\n", "  - relabel: [{kind: Pod, name: shop/client, labels: {lab.nftpolicy.io/pod: x}}]\n    expect:\n"),
			"steps[0].relabel[0].labels: lab.nftpolicy.io/pod belongs to the lab"},
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

func TestParseClusterNetworkPolicyIsItsOwnError(t *testing.T) {
	_, err := ParsePolicies("apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: a}\nspec: {tier: Admin}\n")
	if !errors.Is(err, ErrClusterNetworkPolicy) {
		t.Errorf("error = %v, want ErrClusterNetworkPolicy", err)
	}
}

func TestPodServiceNames(t *testing.T) {
	if got := PodServiceName("a"); got != "svc-a" {
		t.Errorf("PodServiceName(a) = %q", got)
	}
	if got := PodServiceName("web.v1"); got != "svc-web-v1" {
		t.Errorf("PodServiceName(web.v1) = %q, want dots made dashes", got)
	}
	long1, long2 := strings.Repeat("p", 70)+"1", strings.Repeat("p", 70)+"2"
	for _, name := range []string{PodServiceName(long1), PodServiceName(long2)} {
		if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
			t.Errorf("PodServiceName of a long pod = %q: %v", name, msgs)
		}
	}
	if PodServiceName(long1) == PodServiceName(long2) {
		t.Errorf("two long pod names sharing a prefix got the same Service %q", PodServiceName(long1))
	}
	if v := PodServiceLabelValue(long1); len(validation.IsValidLabelValue(v)) > 0 || v == PodServiceLabelValue(long2) {
		t.Errorf("PodServiceLabelValue of long names = %q, %q", v, PodServiceLabelValue(long2))
	}
	if got := PodServiceLabelValue("web.v1"); got != "web.v1" {
		t.Errorf("PodServiceLabelValue(web.v1) = %q, want the name itself", got)
	}
}

func TestRunViaServiceProbesThroughServices(t *testing.T) {
	s := mustParse(t, servicesFile)
	lab := &fakeCluster{}
	result := Run(context.Background(), lab, s, fastOptions())
	if !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	checks := result.Runs[0].Steps[0].Checks
	var got []string
	for _, c := range checks {
		got = append(got, string(c.Via))
	}
	if strings.Join(got, ",") != "service,pod,pod" {
		t.Errorf("checks via %v, want service, pod, pod: an expect without via probes pod IPs", got)
	}
	// 2 sources to web-1, polled once and checked once, per check with port 8080.
	if lab.probesVia[ViaService] != 4 || lab.probesVia[ViaPod] != 8 {
		t.Errorf("probes = %v, want 4 through Services and 8 to pod IPs", lab.probesVia)
	}
	out := report(&result)
	for _, want := range []string{"expect TCP/8080 via service: PASS", "expect TCP/9090 via pod: PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestRunAlsoViaServiceChecksBothMatricesInOneStep(t *testing.T) {
	s := mustLoad(t, sharedFile(t, "default-deny-ingress.yaml"))
	opts := fastOptions()
	opts.AlsoViaService = true

	lab := &fakeCluster{lag: 10 * time.Millisecond}
	result := Run(context.Background(), lab, s, opts)
	if !result.Passed() {
		t.Fatalf("failed:\n%s", report(&result))
	}
	step := result.Runs[0].Steps[0]
	if len(step.Checks) != 2 || step.Checks[0].Via != ViaPod || step.Checks[1].Via != ViaService {
		t.Fatalf("checks = %+v, want the pod matrix then the Service matrix", step.Checks)
	}
	if calls := lab.callLog(); strings.Count(strings.Join(calls, " "), "setup") != 1 {
		t.Errorf("calls = %v, want one setup: both matrices share the step", calls)
	}

	// A dataplane that lets Service traffic bypass the policy passes the pod matrix only.
	opts.Deadline = 20 * time.Millisecond
	result = Run(context.Background(), &fakeCluster{serviceBypass: true}, s, opts)
	step = result.Runs[0].Steps[0]
	if result.Passed() || !step.Checks[0].Passed() || step.Checks[1].Passed() {
		t.Fatalf("want only the Service matrix to fail:\n%s", report(&result))
	}
	out := report(&result)
	for _, want := range []string{"expect UDP/81 via pod: PASS", "expect UDP/81 via service: FAIL", "mismatch x/b -> x/a: expected blocked, observed allowed"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// DefaultVia service checks the Service matrix alone.
	lab = &fakeCluster{}
	result = Run(context.Background(), lab, s, Options{PollInterval: time.Millisecond, Deadline: time.Second, DefaultVia: ViaService})
	if checks := result.Runs[0].Steps[0].Checks; !result.Passed() || len(checks) != 1 || checks[0].Via != ViaService || lab.probesVia[ViaPod] != 0 {
		t.Errorf("DefaultVia service: probes %v\n%s", lab.probesVia, report(&result))
	}

	// Without either option the same file probes pod IPs only, and says nothing of via.
	lab = &fakeCluster{}
	result = Run(context.Background(), lab, s, fastOptions())
	if !result.Passed() || lab.probesVia[ViaService] != 0 || strings.Contains(report(&result), "via") {
		t.Errorf("without AlsoViaService: probes %v\n%s", lab.probesVia, report(&result))
	}
}

func TestRunServiceWithoutEndpointsIsAFailedProbeNotABlockedOne(t *testing.T) {
	s := mustLoad(t, sharedFile(t, "default-deny-ingress.yaml"))
	opts := fastOptions()
	opts.Deadline = 10 * time.Millisecond
	opts.AlsoViaService = true
	result := Run(context.Background(), &fakeCluster{noEndpoints: map[string]bool{"x/a": true}}, s, opts)
	if result.Passed() {
		t.Fatal("passed although x/a's Service has no endpoints")
	}
	svc := result.Runs[0].Steps[0].Checks[1]
	if len(svc.ProbeErrors) != 8 || len(svc.Mismatches) != 8 {
		t.Errorf("%d probe errors, %d mismatches; want the 8 sources of x/a", len(svc.ProbeErrors), len(svc.Mismatches))
	}
	out := report(&result)
	for _, want := range []string{"[?]", "mismatch y/a -> x/a: expected blocked, probe failed: probing y/a -> Service of x/a: no endpoints"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
