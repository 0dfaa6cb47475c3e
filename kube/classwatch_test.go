package kube_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// A class whose Rego policy does not compile is reported in a log line and
// a metric when the cache first lists it and again when it changes; a fix
// clears the metric. Other classes are not affected.
func TestBrokenClassPolicyIsReportedAtStartupAndOnChange(t *testing.T) {
	env := apiserver.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := "rego-" + env.Namespace(t, "rego")
	good := "package proxy\nauth := {\"position\": \"header\", \"auth\": {\"X-Api-Key\": input.data.key}}"
	broken := &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	broken.Spec.Auth.Types = []v1alpha1.AuthType{{Name: "key", SecretType: "Opaque", Generator: &v1alpha1.Rego{Rego: "package proxy\nauth := {"}}}
	require.NoError(t, env.Client.Create(ctx, broken))
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), broken) })

	var mu sync.Mutex
	var logs strings.Builder
	reg := prometheus.NewRegistry()
	engine := policy.New(policy.Options{Registerer: reg, Log: funcr.New(func(p, a string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(p + " " + a + "\n")
	}, funcr.Options{})})
	invalid := func() float64 {
		n, err := testutil.GatherAndCount(reg, "connectors_policy_invalid_rules")
		require.NoError(t, err)
		if n == 0 {
			return 0
		}
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "connectors_policy_invalid_rules" && m.GetLabel()[0].GetValue() == name {
					return m.GetGauge().GetValue()
				}
			}
		}
		return 0
	}
	logged := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), `"connectorclass"="`+name+`"`)
	}

	c, err := kube.NewCache(kube.CacheOptions{Config: env.Config})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.OnConnectorClass(ctx, func(cc *v1alpha1.ConnectorClass) { engine.Check(cc) }, engine.Forget))
	require.Eventually(t, func() bool { return logged() == 1 && invalid() == 1 }, 20*time.Second, 20*time.Millisecond,
		"the broken class was not reported at startup")
	mu.Lock()
	require.Contains(t, logs.String(), "spec.auth.types[key].generator.rego")
	mu.Unlock()

	// A change that is still broken is reported again.
	require.NoError(t, env.Client.Get(ctx, clientKey(name), broken))
	broken.Spec.Auth.Types[0].Generator.Rego = "package proxy\nx := 1"
	require.NoError(t, env.Client.Update(ctx, broken))
	require.Eventually(t, func() bool { return logged() == 2 }, 20*time.Second, 20*time.Millisecond,
		"the changed class was not reported")

	// The fix clears the metric.
	require.NoError(t, env.Client.Get(ctx, clientKey(name), broken))
	broken.Spec.Auth.Types[0].Generator.Rego = good
	require.NoError(t, env.Client.Update(ctx, broken))
	require.Eventually(t, func() bool { return invalid() == 0 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, 2, logged())
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
