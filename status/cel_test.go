package status

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func testPrograms(t *testing.T) (*celPrograms, prometheus.Counter) {
	t.Helper()
	n := prometheus.NewCounter(prometheus.CounterOpts{Name: "compiles"})
	p, err := newCELPrograms(n)
	require.NoError(t, err)
	return p, n
}

func testClass(gen int64) *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: "tool", UID: "uid-1", Generation: gen}}
}

const testField = "spec.authProbes[0].probe.http.response.cel"

func jsonAnswer(status int, body string) *answer {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Add("X-Tool-Version", "1")
	h.Add("X-Tool-Version", "2")
	return &answer{status: status, header: h, body: []byte(body)}
}

func TestCELEvaluatesTheResponseAsUpstreamDocuments(t *testing.T) {
	p, _ := testPrograms(t)
	ok := jsonAnswer(200, `{"status":"healthy","uptime":61,"errors":[],"user":{"login":"bot"}}`)
	for expr, want := range map[string]bool{
		`response.statusCode == 200`:                                                         true,
		`response.statusCode == 200 && response.body.status == 'healthy'`:                    true,
		`response.body.uptime > 60 && response.body.errors.size() == 0`:                      true,
		`response.body.user.login == 'bot'`:                                                  true,
		`response.headers['content-type'][0].startsWith('application/json')`:                 true,
		`response.headers['Content-Type'][0].startsWith('application/json')`:                 true,
		`'x-tool-version' in response.headers && 'X-TOOL-VERSION' in response.headers`:       true,
		`response.headers['x-tool-version'] == ['1', '2']`:                                   true,
		`response.bodyString.contains('healthy') && !response.bodyString.contains('error:')`: true,
		`has(response.body.status)`:                                                          true,
		`response.statusCode == 201`:                                                         false,
		`response.body.status == 'degraded'`:                                                 false,
		`response.bodyString.lowerAscii().contains('healthy')`:                               true,
	} {
		prog, err := p.program(testClass(1), testField, expr)
		require.NoError(t, err, expr)
		got, err := evalCEL(context.Background(), prog, ok)
		require.NoError(t, err, expr)
		require.Equal(t, want, got, expr)
	}
}

func TestCELBodyIsNullUnlessJSON(t *testing.T) {
	p, _ := testPrograms(t)
	prog, err := p.program(testClass(1), testField, `response.body == null`)
	require.NoError(t, err)
	for name, a := range map[string]*answer{
		"text":      {status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: []byte(`{"a":1}`)},
		"bad json":  jsonAnswer(200, `{"a":`),
		"two docs":  jsonAnswer(200, `{} {}`),
		"truncated": {status: 200, header: jsonAnswer(0, "").header, body: []byte(`{}`), truncated: true},
	} {
		got, err := evalCEL(context.Background(), prog, a)
		require.NoError(t, err, name)
		require.True(t, got, name)
	}
	a := jsonAnswer(200, `{"a":1}`)
	a.header.Set("Content-Type", "application/vnd.tool+json")
	got, err := evalCEL(context.Background(), prog, a)
	require.NoError(t, err)
	require.False(t, got, "a +json media type is JSON")
}

func TestCELCompileErrorsNameTheField(t *testing.T) {
	p, _ := testPrograms(t)
	for expr, want := range map[string]string{
		`response.statusCode ==`:                 "does not compile",
		`response.statusCode + 1`:                "evaluates to int, not bool",
		`'a'`:                                    "evaluates to string, not bool",
		`nosuchvar == 1`:                         "undeclared reference",
		``:                                       "empty expression",
		strings.Repeat("true && ", 700) + "true": "longer than",
		strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100): "does not compile",
	} {
		_, err := p.program(testClass(1), testField, expr)
		require.Error(t, err, expr)
		require.Contains(t, err.Error(), `connectorclass "tool" `+testField+": ", expr)
		require.Contains(t, err.Error(), want, expr)
		require.NotContains(t, err.Error(), "\n", "one line")
	}
}

func TestCELRuntimeBounds(t *testing.T) {
	p, _ := testPrograms(t)
	big := jsonAnswer(200, `"`+strings.Repeat("a", celMaxBody-2)+`"`)
	// Quadratic work over a 1 MiB body stops at the cost limit.
	prog, err := p.program(testClass(1), testField,
		`response.bodyString.split('').all(c, response.bodyString.contains(c))`)
	require.NoError(t, err)
	_, err = evalCEL(context.Background(), prog, big)
	require.Error(t, err)
	require.Contains(t, err.Error(), "cost limit")

	// A non-bool dynamic result and a runtime error are errors, not true.
	prog, err = p.program(testClass(1), testField, `response.body`)
	require.NoError(t, err)
	_, err = evalCEL(context.Background(), prog, jsonAnswer(200, `{"a":1}`))
	require.ErrorContains(t, err, "not bool")
	prog, err = p.program(testClass(1), testField, `response.body.missing == 1`)
	require.NoError(t, err)
	_, err = evalCEL(context.Background(), prog, jsonAnswer(200, `{"a":1}`))
	require.ErrorContains(t, err, "no such key")

	// A cancelled context stops evaluation.
	prog, err = p.program(testClass(1), testField, `[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, x+y+z > 0)))`)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = evalCEL(ctx, prog, jsonAnswer(200, `{}`))
	require.Error(t, err)
}

func TestCELCompilesOncePerClassGeneration(t *testing.T) {
	p, n := testPrograms(t)
	expr := `response.statusCode == 200`
	for range 5 {
		_, err := p.program(testClass(1), testField, expr)
		require.NoError(t, err)
	}
	require.InDelta(t, 1, testutil.ToFloat64(n), 0)
	// A compile error is kept too: it is not compiled again per probe.
	for range 3 {
		_, err := p.program(testClass(1), "other", "(")
		require.Error(t, err)
	}
	require.InDelta(t, 2, testutil.ToFloat64(n), 0)
	_, err := p.program(testClass(2), testField, expr)
	require.NoError(t, err)
	require.InDelta(t, 3, testutil.ToFloat64(n), 0, "a new generation compiles again")
	recreated := testClass(2)
	recreated.UID = "uid-2"
	_, err = p.program(recreated, testField, expr)
	require.NoError(t, err)
	require.InDelta(t, 4, testutil.ToFloat64(n), 0, "a recreated class compiles again")
	p.forgetClass("tool")
	require.Empty(t, p.progs)
}

func TestRedactRemovesEverySecretForm(t *testing.T) {
	s := &corev1.Secret{Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{
		"username": []byte("probe-bot"), "password": []byte("pr0be-s3cret"),
	}}
	for _, msg := range []string{
		"answered: pr0be-s3cret",
		"Basic cHJvYmUtYm90OnByMGJlLXMzY3JldA==",
		"b64 cHIwYmUtczNjcmV0",
		"pair probe-bot:pr0be-s3cret",
	} {
		got := redact(&outcome{False, "r", msg}, s)
		require.NotContains(t, got.message, "pr0be-s3cret", msg)
		require.NotContains(t, got.message, "cHIwYmUtczNjcmV0", msg)
		require.NotContains(t, got.message, "cHJvYmUtYm90OnByMGJlLXMzY3JldA==", msg)
		require.Contains(t, got.message, "[redacted]", msg)
	}
	require.Nil(t, redact(nil, s))
}
