package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

const secretValue = "s3cr3t-api-key-77a1"

func class(name string, generation int64, gen, extractor string) *v1alpha1.ConnectorClass {
	cc := &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "x", Generation: generation}}
	if gen != "" {
		cc.Spec.Auth.Types = []v1alpha1.AuthType{{Name: "apiKey", SecretType: "Opaque", Generator: &v1alpha1.Rego{Rego: gen}}}
	}
	if extractor != "" {
		cc.Spec.Proxy = &v1alpha1.ProxySpec{AuthExtractor: &v1alpha1.Rego{Rego: extractor}}
	}
	return cc
}

func request() *Request {
	return &Request{Method: "GET", Path: "/api", Host: "api.example.test",
		Header: http.Header{"Private-Token": {"pod-token"}, "Accept": {"*/*"}}, Query: url.Values{"page": {"2"}}}
}

// Upstream's examples, in both Rego syntaxes the docs use.
const (
	headerGen = `package proxy
auth = {
  "position": "header",
  "auth": {"Authorization": concat(" ", ["Bearer", input.data.token])}
}`
	queryGen = `package proxy
auth = {"position": "query", "auth": {"api_key": input.data.apikey}}`
	bodyGen = `package proxy
auth = {
  "position": "body",
  "contentType": "application/json",
  "auth": {"username": input.data.username, "password": input.data.password}
}`
	conditionalV0 = `package proxy
default auth = {"position": "header", "auth": {"X-API-Key": "none"}}
auth = {"position": "header", "auth": {"X-API-Key": input.data.apikey}} {
  input.data.apikey != ""
}`
	extractorV1 = `package proxy
default auth = {"token": ""}
auth = {"token": input.request.headers["Private-Token"][0]} if {
  input.request.headers != null
  input.request.headers["Private-Token"] != null
  count(input.request.headers["Private-Token"]) > 0
}`
	bodyExtractor = `package proxy
auth = {"token": input.request.body.token}`
)

func TestUpstreamExamples(t *testing.T) {
	e := New(Options{})
	ctx := context.Background()
	data := map[string]string{"token": secretValue, "apikey": secretValue, "username": "u", "password": secretValue}
	cases := []struct {
		src      string
		position string
		key, val string
	}{
		{headerGen, PositionHeader, "Authorization", "Bearer " + secretValue},
		{queryGen, PositionQuery, "api_key", secretValue},
		{bodyGen, PositionBody, "password", secretValue},
		{conditionalV0, PositionHeader, "X-API-Key", secretValue},
	}
	for i, c := range cases {
		g, err := e.Class(class("c", int64(i), c.src, "")).Generator("apiKey")
		if err != nil || g == nil {
			t.Fatalf("case %d: %v", i, err)
		}
		in, err := g.Generate(ctx, data, request())
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if in.Position != c.position {
			t.Errorf("case %d: position %q", i, in.Position)
		}
		found := false
		for _, v := range in.Values {
			found = found || (v.Key == c.key && v.Value == c.val)
		}
		if !found {
			t.Errorf("case %d: %s not injected", i, c.key)
		}
	}
	x, err := e.Class(class("x", 1, "", extractorV1)).Extractor()
	if err != nil || x == nil {
		t.Fatal(err)
	}
	if x.ReadsBody() {
		t.Errorf("a header extractor should not read the body")
	}
	if tok, err := x.Extract(ctx, request()); err != nil || tok != "pod-token" {
		t.Errorf("extract: %q %v", tok, err)
	}
	if tok, err := x.Extract(ctx, &Request{}); err != nil || tok != "" {
		t.Errorf("extract without headers: %q %v", tok, err)
	}
	bx, _ := e.Class(class("bx", 1, "", bodyExtractor)).Extractor()
	if !bx.ReadsBody() {
		t.Errorf("a body extractor must read the body")
	}
	req := request()
	req.Body = map[string]any{"token": "from-body"}
	if tok, err := bx.Extract(ctx, req); err != nil || tok != "from-body" {
		t.Errorf("body extract: %q %v", tok, err)
	}
}

func TestBadPolicies(t *testing.T) {
	logs := &strings.Builder{}
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	e := New(Options{Registerer: reg, Timeout: time.Minute, MaxSteps: 20_000, Log: funcr.New(func(p, a string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(p + " " + a + "\n")
	}, funcr.Options{})})
	ctx := context.Background()
	data := map[string]string{"token": secretValue}
	compileCases := []struct{ name, src, want string }{
		{"syntax error", "package proxy\nauth = {", "does not parse"},
		{"other package", "package other\nauth = {}", "the package must be proxy"},
		{"no auth rule", "package proxy\nx = 1", "defines no rule auth"},
		{"infinite recursion", "package proxy\nf(x) := f(x)\nauth := f(1)", "recursion"},
		{"recursion through rules", "package proxy\na := b\nb := a\nauth := a", "recursion"},
		{"http.send", `package proxy
auth := {"position": "header", "auth": {"X": http.send({"method": "get", "url": "http://127.0.0.1:1/"}).body}}`, "http.send"},
		{"opa.runtime", `package proxy
auth := {"position": "header", "auth": {"X": opa.runtime().env.HOME}}`, "opa.runtime"},
		{"net.lookup_ip_addr", `package proxy
auth := {"position": "header", "auth": {"X": net.lookup_ip_addr("example.com")}}`, "net.lookup_ip_addr"},
		{"empty", "  ", "empty"},
	}
	for i, c := range compileCases {
		t.Run(c.name, func(t *testing.T) {
			cl := e.Class(class("bad-"+strings.ReplaceAll(c.name, " ", "-"), int64(i), c.src, ""))
			_, err := cl.Generator("apiKey")
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != reasonCompile || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want a compile error with %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "spec.auth.types[apiKey].generator.rego") || !strings.Contains(err.Error(), "bad-") {
				t.Errorf("error does not name the class and the rule: %v", err)
			}
		})
	}
	if got := testutil.ToFloat64(e.metrics.invalid.WithLabelValues("bad-syntax-error")); got != 1 {
		t.Errorf("invalid gauge %v", got)
	}
	if !strings.Contains(logs.String(), "bad-syntax-error") {
		t.Errorf("compile failure not logged: %s", logs.String())
	}
	evalCases := []struct{ name, src, reason string }{
		{"wrong shape: string", `package proxy
auth := "x"`, reasonShape},
		{"wrong shape: bad position", `package proxy
auth := {"position": "cookie", "auth": {"a": input.data.token}}`, reasonShape},
		{"wrong shape: number value", `package proxy
auth := {"position": "header", "auth": {"A": 1}}`, reasonShape},
		{"wrong shape: Host header", `package proxy
auth := {"position": "header", "auth": {"Host": input.data.token}}`, reasonShape},
		{"wrong shape: CRLF in a header", `package proxy
auth := {"position": "header", "auth": {"A": concat("", [input.data.token, "\r\nX: y"])}}`, reasonShape},
		{"undefined", `package proxy
auth := {"position": "header", "auth": {"A": input.data.missing}}`, reasonShape},
		{"huge output", `package proxy
auth := {"position": "header", "auth": {"A": concat("", [x | some i in numbers.range(1, 2000); x := input.data.token])}}`, reasonShape},
		{"many steps", `package proxy
xs := [x | some i in numbers.range(1, 300); some j in numbers.range(1, 300); x := i * j]
auth := {"position": "header", "auth": {"A": sprintf("%d", [count(xs)])}}`, reasonBudget},
		{"conflict", `package proxy
auth := {"position": "header", "auth": {"A": "1"}} if input.data.token
auth := {"position": "header", "auth": {"A": "2"}} if input.data.token`, reasonError},
		{"builtin error names no data", `package proxy
auth := {"position": "header", "auth": {"A": json.unmarshal(input.data.token)}}`, reasonShape},
	}
	for i, c := range evalCases {
		t.Run(c.name, func(t *testing.T) {
			g, err := e.Class(class("eval-"+strings.ReplaceAll(c.name, " ", "-"), int64(i), c.src, "")).Generator("apiKey")
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Generate(ctx, data, request())
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != c.reason {
				t.Fatalf("error %v, want reason %s", err, c.reason)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("the error holds the secret")
			}
		})
	}
	// A fresh engine with a tiny deadline: the loop times out instead.
	slow := New(Options{Timeout: 20 * time.Millisecond, MaxSteps: 1 << 40})
	g, _ := slow.Class(class("slow", 1, `package proxy
auth := {"position": "header", "auth": {"A": concat("", [x | some i in numbers.range(1, 10000000); x := input.data.token])}}`, "")).Generator("apiKey")
	if _, err := g.Generate(ctx, data, request()); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("deadline: %v", err)
	}
	if strings.Contains(logs.String(), secretValue) {
		t.Errorf("logs hold the secret")
	}
	if n := testutil.CollectAndCount(e.metrics.errors); n == 0 {
		t.Errorf("no error metrics")
	}
}

func TestExtractorShape(t *testing.T) {
	e := New(Options{})
	for _, src := range []string{
		"package proxy\nauth := {\"token\": 1}",
		"package proxy\nauth := \"tok\"",
		"package proxy\nauth := {\"token\": \"a\", \"other\": \"b\"}",
	} {
		x, err := e.Class(class("x", int64(len(src)), "", src)).Extractor()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Extract(context.Background(), request()); err == nil || !strings.Contains(err.Error(), ExtractorRule) {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// One class generation compiles once; a new generation compiles again; the
// cache stays within its bound.
func TestCacheByGeneration(t *testing.T) {
	e := New(Options{CacheSize: 2})
	a := e.Class(class("a", 1, headerGen, ""))
	if e.Class(class("a", 1, headerGen, "")) != a {
		t.Errorf("same generation compiled twice")
	}
	if e.Class(class("a", 2, queryGen, "")) == a {
		t.Errorf("new generation served from the cache")
	}
	e.Class(class("b", 1, headerGen, ""))
	if len(e.entries) > 2 || e.order.Len() > 2 {
		t.Errorf("cache holds %d entries", len(e.entries))
	}
	// A class with a broken extractor keeps its working generator.
	cl := e.Class(class("half", 1, headerGen, "package proxy\nauth = {"))
	if g, err := cl.Generator("apiKey"); g == nil || err != nil {
		t.Errorf("generator of a class with a broken extractor: %v", err)
	}
	if _, err := cl.Extractor(); err == nil {
		t.Errorf("broken extractor compiled")
	}
}

func TestConcurrentEvaluation(t *testing.T) {
	e := New(Options{Timeout: time.Minute})
	cc := class("c", 1, headerGen, extractorV1)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Go(func() {
			for i := range 50 {
				tok := fmt.Sprintf("%s-%d-%d", secretValue, w, i)
				cl := e.Class(cc)
				g, _ := cl.Generator("apiKey")
				in, err := g.Generate(context.Background(), map[string]string{"token": tok}, request())
				if err != nil || in.Values[0].Value != "Bearer "+tok {
					errs <- fmt.Errorf("generator: %w", err)
					return
				}
				x, _ := cl.Extractor()
				req := request()
				req.Header = http.Header{"Private-Token": {tok}}
				if got, err := x.Extract(context.Background(), req); err != nil || got != tok {
					errs <- fmt.Errorf("extractor: %w (%q)", err, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkGenerator(b *testing.B) {
	e := New(Options{})
	g, err := e.Class(class("c", 1, headerGen, "")).Generator("apiKey")
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]string{"token": secretValue}
	req := request()
	ctx := context.Background()
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if _, err := g.Generate(ctx, data, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process has used: on a shared machine it
// measures an operation's cost more steadily than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
