// Command crdcheck validates prometheus-operator resources in a manifest stream against the
// operator's own Go types, strictly (unknown or mistyped fields fail): kubeconform has no
// schema for these CRDs offline, and the types are the source the CRD schemas are made from.
//
// Usage: kustomize build deploy/k8s/overlays/cpu | crdcheck
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The custom resources finpulse's manifests use, by "apiVersion/Kind".
var kinds = map[string]func() any{
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func main() {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	checked, invalid := 0, 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "crdcheck: reading manifests:", err)
			os.Exit(2)
		}
		var h header
		if err := yaml.Unmarshal(doc, &h); err != nil {
			fmt.Fprintln(os.Stderr, "crdcheck: not a YAML object:", err)
			os.Exit(2)
		}
		newObject, ok := kinds[h.APIVersion+"/"+h.Kind]
		if !ok {
			continue
		}
		checked++
		if err := yaml.UnmarshalStrict(doc, newObject()); err != nil {
			invalid++
			fmt.Printf("%s/%s: INVALID: %v\n", h.Kind, h.Metadata.Name, err)
			continue
		}
		fmt.Printf("%s/%s: valid\n", h.Kind, h.Metadata.Name)
	}
	fmt.Printf("crdcheck: %d checked, %d invalid\n", checked, invalid)
	if invalid > 0 {
		os.Exit(1)
	}
}
