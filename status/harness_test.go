package status_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/fake"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apiserver.StopShared()
	os.Exit(code)
}

// Credentials of the test upstream. They must never appear in a log line,
// a condition or an event.
const (
	upstreamUser = "probe-bot"
	upstreamPass = "pr0be-s3cret-PASSWORD"
)

// counter counts the API requests of one node by verb.
type counter struct {
	// namespace, when set, limits the count to requests for objects in
	// it and cluster-scoped ones: the shared API server holds other
	// tests' Connectors, which this node reconciles too.
	namespace string
	writes    atomic.Int64 // POST, PUT, PATCH, DELETE
	reads     atomic.Int64
	// statusWrites counts patches of connectors/status.
	statusWrites atomic.Int64
	// services and events count writes of those.
	services, events atomic.Int64
	// leases counts every request for Leases; leaseWatches the watches and
	// leaseReads the reads of the one Lease (not lists) among them.
	leases, leaseWatches, leaseReads atomic.Int64
}

type countingTransport struct {
	rt http.RoundTripper
	c  *counter
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if ns := t.c.namespace; ns != "" && strings.Contains(r.URL.Path, "/namespaces/") &&
		!strings.Contains(r.URL.Path, "/namespaces/"+ns+"/") {
		return t.rt.RoundTrip(r)
	}
	if strings.Contains(r.URL.Path, "/leases") {
		t.c.leases.Add(1)
		switch {
		case r.URL.Query().Get("watch") == "true":
			t.c.leaseWatches.Add(1)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/leases/"):
			t.c.leaseReads.Add(1)
		}
	}
	switch r.Method {
	case http.MethodGet:
		t.c.reads.Add(1)
	default:
		// Lease renewals are writes too, but not the reconciler's.
		if !strings.Contains(r.URL.Path, "/leases/") {
			t.c.writes.Add(1)
		}
		switch {
		case strings.Contains(r.URL.Path, "/connectors/") && strings.HasSuffix(r.URL.Path, "/status"):
			t.c.statusWrites.Add(1)
		case strings.Contains(r.URL.Path, "/services"):
			t.c.services.Add(1)
		case strings.Contains(r.URL.Path, "/events"):
			t.c.events.Add(1)
		}
	}
	return t.rt.RoundTrip(r)
}

// node is one node's status reconciler with its own clients and cache.
type node struct {
	rec     *status.Reconciler
	reg     *prometheus.Registry
	api     *counter
	logs    *syncBuffer
	cancel  context.CancelFunc
	done    chan struct{}
	stopped atomic.Bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) write(prefix, args string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(prefix + " " + args + "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type nodeOptions struct {
	identity  string
	leaseNS   string
	interval  time.Duration
	publicURL publicurl.URL
	probeRate float64
	// countNS limits the node's request counts to one namespace.
	countNS string
	// config is the node's client configuration; default the admin's.
	config *rest.Config
	// whileLeading run while the node holds the lease.
	whileLeading []func(context.Context) error
}

// startNode starts a reconciler as a node process would: its own clients,
// cache, proxy and lease campaign.
func startNode(t testing.TB, env *apiserver.Env, o nodeOptions) *node {
	t.Helper()
	n := &node{reg: prometheus.NewRegistry(), api: &counter{namespace: o.countNS}, logs: &syncBuffer{}, done: make(chan struct{})}
	base := env.Config
	if o.config != nil {
		base = o.config
	}
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{rt: rt, c: n.api} }
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	log := funcr.New(n.logs.write, funcr.Options{Verbosity: 9})
	cache, err := kube.NewCache(kube.CacheOptions{Config: cfg, SecretTTL: 100 * time.Millisecond, Log: log})
	require.NoError(t, err)
	require.NoError(t, cache.Start(ctx))
	require.True(t, cache.WaitForSync(ctx))
	authority, err := ca.NewCA("status-test-ca", time.Now())
	require.NoError(t, err)
	// SendAs does not authenticate: an Auth that knows no token.
	p, err := proxy.New(proxy.Options{Objects: cache, Auth: fake.NewAuth(), CA: authority, AllowLoopback: true, Log: log})
	require.NoError(t, err)
	kc, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	cl, err := client.New(cfg, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(t, err)
	if o.interval == 0 {
		o.interval = time.Second
	}
	n.rec, err = status.New(status.Options{
		Objects: cache, Kube: kc, Client: cl, Sender: p,
		Namespace: o.leaseNS, Identity: o.identity,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		PublicURL:     o.publicURL,
		ProbeInterval: o.interval, ProbeBackoff: 200 * time.Millisecond, ProbeTimeout: 5 * time.Second,
		ProbeRate: o.probeRate, ProbeWorkers: 8, Workers: 8,
		WhileLeading: o.whileLeading,
		Log:          log, Registerer: n.reg,
	})
	require.NoError(t, err)
	go func() {
		defer close(n.done)
		_ = n.rec.Run(ctx)
	}()
	t.Cleanup(n.stop)
	return n
}

// stop ends the node as SIGTERM would and waits for it.
func (n *node) stop() {
	if n.stopped.Swap(true) {
		return
	}
	n.cancel()
	<-n.done
}

func (n *node) statusWrites() float64 {
	return testutil.ToFloat64(metricVec(n.reg, "connectors_status_writes_total"))
}

// metricVec sums a counter family of a registry.
func metricVec(reg *prometheus.Registry, name string) prometheus.Collector {
	return prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "sum", nil, nil), prometheus.CounterValue, sum)
	})
}

// upstream is a tool that wants Basic upstreamUser:upstreamPass on
// /<repo>/info/refs and answers / to anyone.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	// bad counts requests that carried a credential other than the right one.
	mu   sync.Mutex
	seen []string
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(upstreamUser+":"+upstreamPass))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		if r.URL.Path == "/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(u.Close)
	return u
}

func js(t testing.TB, v any) apiextensionsv1.JSON {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return apiextensionsv1.JSON{Raw: b}
}

// gitClass is upstream's git class: liveness on /, an auth probe on the
// repository's info/refs with the Authorization header template.
func gitClass(name string, annotations map[string]string) *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: v1alpha1.ConnectorClassSpec{
			Address: &v1alpha1.ParamSpec{Name: "address", Type: "string"},
			Auth: v1alpha1.ConnectorClassAuth{Types: []v1alpha1.AuthType{
				{Name: "basicAuth", SecretType: string(corev1.SecretTypeBasicAuth), Optional: true},
			}},
			LivenessProbe: &v1alpha1.Probe{HTTP: &v1alpha1.HTTPProbe{Path: "/"}},
			AuthProbes: []v1alpha1.AuthProbe{{
				AuthName: "basicAuth",
				Params:   []v1alpha1.ParamSpec{{Name: "repository", Type: "string"}},
				Probe: &v1alpha1.Probe{HTTP: &v1alpha1.HTTPProbe{
					Path: `/{{- range .Connector.Spec.Auth.Params }}{{- if eq .Name "repository" }}{{ .Value.StringVal }}{{ end }}{{- end }}/info/refs?service=git-upload-pack`,
					HTTPHeaders: []v1alpha1.HTTPHeader{{
						Name:  "Authorization",
						Value: `{{- if .Secret }}Basic {{ printf "%s:%s" .Secret.StringData.username .Secret.StringData.password | b64enc }} {{- end }}`,
					}},
				}},
			}},
		},
	}
}

func gitConnector(t testing.TB, ns, name, class, address, secret string) *v1alpha1.Connector {
	c := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: class,
			Address:            address,
			Auth: v1alpha1.ConnectorAuth{
				Name:   "basicAuth",
				Params: []v1alpha1.Param{{Name: "repository", Value: js(t, "org/repo.git")}},
			},
		},
	}
	if secret != "" {
		c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: secret}
	}
	return c
}

func basicSecret(ns, name, password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": upstreamUser, "password": password},
	}
}

func create(t testing.TB, env *apiserver.Env, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		require.NoError(t, env.Client.Create(context.Background(), o), "creating %T %s", o, o.GetName())
		if cls, ok := o.(*v1alpha1.ConnectorClass); ok {
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cls) })
		}
	}
}

// eventually polls cond until it holds, failing after a generous bound
// that only a broken reconciler reaches.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: never happened; last: %s", what, last)
}

func getConnector(t testing.TB, env *apiserver.Env, ns, name string) *v1alpha1.Connector {
	t.Helper()
	var c v1alpha1.Connector
	require.NoError(t, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &c))
	return &c
}

func condition(c *v1alpha1.Connector, typ string) *v1alpha1.Condition {
	return findCond(c.Status.Conditions, typ)
}

// waitReady waits until the Connector's Ready condition has status and
// reason (for the current generation) and returns the Connector.
func waitReady(t testing.TB, env *apiserver.Env, ns, name, st, reason string) *v1alpha1.Connector {
	t.Helper()
	var c *v1alpha1.Connector
	eventually(t, fmt.Sprintf("%s/%s Ready=%s %s", ns, name, st, reason), func() (bool, string) {
		c = getConnector(t, env, ns, name)
		r := condition(c, status.TypeReady)
		if r == nil {
			return false, "no Ready condition"
		}
		got := fmt.Sprintf("Ready=%s %s %q (observed %d of %d)", r.Status, r.Reason, r.Message, c.Status.ObservedGeneration, c.Generation)
		return r.Status == st && r.Reason == reason && c.Status.ObservedGeneration == c.Generation, got
	})
	return c
}
