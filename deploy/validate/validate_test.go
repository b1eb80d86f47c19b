// Package validate checks plumb's Kubernetes manifests offline: each document is decoded
// strictly (an unknown or misspelt field is an error) into the typed objects of k8s.io/api, the
// Go types the API server itself is built on, and then checked for what plumb needs of it.
package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

type objects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	pdbs        []policyv1.PodDisruptionBudget
	secrets     []corev1.Secret
}

// load decodes every document of every manifest in ../k8s.
func load(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob("../k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var o objects
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			strict := func(v any) {
				if err := yaml.UnmarshalStrict(doc, v); err != nil {
					t.Fatalf("%s document %d (%s): %v", f, i, meta.Kind, err)
				}
			}
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 Deployment":
				var d appsv1.Deployment
				strict(&d)
				o.deployments = append(o.deployments, d)
			case "v1 Service":
				var s corev1.Service
				strict(&s)
				o.services = append(o.services, s)
			case "policy/v1 PodDisruptionBudget":
				var p policyv1.PodDisruptionBudget
				strict(&p)
				o.pdbs = append(o.pdbs, p)
			case "v1 Secret":
				var s corev1.Secret
				strict(&s)
				o.secrets = append(o.secrets, s)
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i, meta.APIVersion, meta.Kind)
			}
		}
	}
	return o
}

// TestManifests: one Deployment with gRPC probes on plumb's health services, its store from a
// Secret that the example provides, a headless Service and a PodDisruptionBudget that select its
// pods.
func TestManifests(t *testing.T) {
	o := load(t)
	if len(o.deployments) != 1 || len(o.services) != 1 || len(o.pdbs) != 1 || len(o.secrets) != 2 {
		t.Fatalf("%d deployments, %d services, %d disruption budgets, %d secrets; want one each and two secrets (database, tokens)",
			len(o.deployments), len(o.services), len(o.pdbs), len(o.secrets))
	}
	d, svc, pdb := o.deployments[0], o.services[0], o.pdbs[0]
	secrets := map[string]corev1.Secret{}
	for _, s := range o.secrets {
		secrets[s.Name] = s
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("the Deployment's selector does not select its pods: %v", err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Fatal("fewer than two replicas")
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("want one container")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Args[0] != "serve" || !slices.Contains(c.Args, "--addr") {
		t.Fatalf("args %v: want plumb serve with --addr", c.Args)
	}
	// plumb serves beyond loopback only with tokens: the tokens file is the tokens Secret,
	// mounted where --auth-tokens reads it.
	i := slices.Index(c.Args, "--auth-tokens")
	if i < 0 || i+1 == len(c.Args) {
		t.Fatalf("args %v: a pod listens beyond loopback, which plumb serves only with --auth-tokens", c.Args)
	}
	tokens := c.Args[i+1]
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && strings.HasPrefix(tokens, m.MountPath+"/") {
				s, ok := secrets[v.Secret.SecretName]
				_, hasKey := s.StringData[strings.TrimPrefix(tokens, m.MountPath+"/")]
				mounted = ok && hasKey && m.ReadOnly
			}
		}
	}
	if !mounted {
		t.Fatalf("--auth-tokens %s is not a key of a Secret mounted read-only", tokens)
	}
	var grpcPort int32
	for _, p := range c.Ports {
		if p.Name == "grpc" {
			grpcPort = p.ContainerPort
		}
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != grpcPort || p.GRPC.Service == nil {
			t.Fatalf("%s probe: want a gRPC health check on port %d naming a service", name, grpcPort)
		}
	}
	if s := *c.ReadinessProbe.GRPC.Service; s != "plumb.v1.ConfidenceService" {
		t.Errorf("readiness probes %q, want plumb.v1.ConfidenceService", s)
	}
	if s := *c.LivenessProbe.GRPC.Service; s != "liveness" {
		t.Errorf("liveness probes %q, want liveness (always SERVING while the process answers)", s)
	}
	var dsn *corev1.SecretKeySelector
	for _, e := range c.Env {
		if e.Name == "PLUMB_STORE" && e.ValueFrom != nil {
			dsn = e.ValueFrom.SecretKeyRef
		}
	}
	secret, ok := secrets[dsn.Name]
	if dsn == nil || !ok {
		t.Fatalf("PLUMB_STORE does not come from an example Secret")
	}
	if _, ok := secret.StringData[dsn.Key]; !ok {
		t.Fatalf("the example Secret has no key %q", dsn.Key)
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 10 {
		t.Error("terminationGracePeriodSeconds must exceed --shutdown-grace (10 s)")
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Error("the Service must be headless (clusterIP: None) for client-side balancing")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Error("the Service does not select the pods")
	}
	if len(svc.Spec.Ports) == 0 || svc.Spec.Ports[0].Port != grpcPort {
		t.Errorf("the Service's first port is not the gRPC port %d", grpcPort)
	}
	psel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !psel.Matches(podLabels) {
		t.Fatal("the PodDisruptionBudget does not select the pods")
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Error("the PodDisruptionBudget's minAvailable must leave a pod to evict")
	}
}
