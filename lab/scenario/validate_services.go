package scenario

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// validate rejects a Via set in Go rather than read from a file (UnmarshalYAML checks those).
func (v Via) validate() error {
	switch v {
	case ViaDefault, ViaPod, ViaService:
		return nil
	}
	return fmt.Errorf("%q: want pod or service", string(v))
}

// validateServices checks the namespace's Services: a DNS label name, unique, and not the name of a
// pod's own Service; a selector; valid, distinct ports; and a named targetPort that some pod the
// Service selects defines for that protocol (otherwise no endpoint could ever serve it).
func (ns *Namespace) validateServices(path string) error {
	var errs []error
	seen := map[string]bool{}
	ownServices := map[string]string{}
	for _, pod := range ns.Pods {
		ownServices[PodServiceName(pod.Name)] = pod.Name
	}
	for i := range ns.Services {
		svc := &ns.Services[i]
		svcPath := fmt.Sprintf("%s.services[%d]", path, i)
		if msgs := validation.IsDNS1035Label(svc.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s.name: %q: %v", svcPath, svc.Name, msgs))
		}
		if seen[svc.Name] {
			errs = append(errs, fmt.Errorf("%s.name: Service %q is listed twice", svcPath, svc.Name))
		}
		seen[svc.Name] = true
		if pod, ok := ownServices[svc.Name]; ok {
			errs = append(errs, fmt.Errorf("%s.name: %q is the name of the Service the lab gives pod %s/%s", svcPath, svc.Name, ns.Name, pod))
		}
		if len(svc.Selector) == 0 {
			errs = append(errs, fmt.Errorf("%s.selector: required: a Service without a selector gets no endpoints", svcPath))
		} else {
			errs = append(errs, validateLabels(svc.Selector, svcPath+".selector"))
		}
		errs = append(errs, ns.validateServicePorts(svc, svcPath+".ports"))
	}
	return errors.Join(errs...)
}

func (ns *Namespace) validateServicePorts(svc *Service, path string) error {
	if len(svc.Ports) == 0 {
		return fmt.Errorf("%s: at least one port is required", path)
	}
	var errs []error
	names := map[string]bool{}
	served := map[ServicePort]bool{}
	for k, p := range svc.Ports {
		portPath := fmt.Sprintf("%s[%d]", path, k)
		errs = append(errs, validatePortProtocol(p.Port, p.Protocol, portPath))
		switch {
		case p.Name == "" && len(svc.Ports) > 1:
			errs = append(errs, fmt.Errorf("%s.name: required when a Service has more than one port", portPath))
		case p.Name != "":
			if msgs := validation.IsDNS1123Label(p.Name); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%s.name: %q: %v", portPath, p.Name, msgs))
			}
			if names[p.Name] {
				errs = append(errs, fmt.Errorf("%s.name: port name %q is used twice", portPath, p.Name))
			}
			names[p.Name] = true
		}
		key := ServicePort{Port: p.Port, Protocol: p.Protocol}
		if served[key] {
			errs = append(errs, fmt.Errorf("%s: %s is listed twice", portPath, key))
		}
		served[key] = true
		errs = append(errs, ns.validateTargetPort(svc, p, portPath+".targetPort"))
	}
	return errors.Join(errs...)
}

func (ns *Namespace) validateTargetPort(svc *Service, p ServicePort, path string) error {
	tp := p.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal != 0 && (tp.IntVal < 1 || tp.IntVal > 65535) {
			return fmt.Errorf("%s: %d is out of 1..65535", path, tp.IntVal)
		}
		return nil
	}
	if msgs := validation.IsValidPortName(tp.StrVal); len(msgs) > 0 {
		return fmt.Errorf("%s: %q: %v", path, tp.StrVal, msgs)
	}
	for _, pod := range ns.Pods {
		if !svc.Selects(&pod) {
			continue
		}
		for _, served := range pod.Ports {
			if served.Name == tp.StrVal && served.Protocol == p.Protocol {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no pod that Service %s/%s selects defines a %s port named %q", path, ns.Name, svc.Name, p.Protocol, tp.StrVal)
}
