package status

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/google/cel-go/cel"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/proxy/registryauth"
)

// livenessField is the field path of the class's HTTP liveness probe.
const livenessField = "spec.livenessProbe.http"

// maxRedirects bounds the redirects a probe follows (within the
// Connector's addresses only).
const maxRedirects = 5

// prober schedules and runs the probes of the Connectors: a delaying queue
// drained by a fixed number of workers under a rate limit.
type prober struct {
	opts     *Options
	metrics  *metrics
	queue    workqueue.TypedDelayingInterface[key]
	limiter  *rate.Limiter
	onResult func(key)
	// run probes one key; set by the controller.
	run func(ctx context.Context, k key) (*probeResult, bool)

	mu       sync.Mutex
	results  map[key]*probeResult
	failures map[key]int
}

// probeResult is the outcome of one round of probes of a Connector.
type probeResult struct {
	fingerprint string
	liveness    *outcome
	auth        *outcome
}

// outcome is one probe's condition.
type outcome struct {
	status, reason, message string
}

func newProber(opts *Options, m *metrics, onResult func(key)) *prober {
	return &prober{
		opts: opts, metrics: m, onResult: onResult,
		queue:    workqueue.NewTypedDelayingQueue[key](),
		limiter:  rate.NewLimiter(rate.Limit(opts.ProbeRate), max(1, int(opts.ProbeRate))),
		results:  map[key]*probeResult{},
		failures: map[key]int{},
	}
}

func (p *prober) shutdown() { p.queue.ShutDown() }

// result returns the last result for k. When it was made from other
// objects (or there is none) it asks for a probe at once; until that
// answers, the last result stands, so a change that does not change the
// outcome does not flap the conditions.
func (p *prober) result(k key, fingerprint string) *probeResult {
	p.mu.Lock()
	r := p.results[k]
	p.mu.Unlock()
	if r == nil || r.fingerprint != fingerprint {
		p.queue.Add(k)
	}
	return r
}

func (p *prober) forget(k key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.results, k)
	delete(p.failures, k)
}

// work runs probes until the queue shuts down.
func (p *prober) work(ctx context.Context) {
	for {
		k, quit := p.queue.Get()
		if quit {
			return
		}
		p.one(ctx, k)
		p.queue.Done(k)
	}
}

func (p *prober) one(ctx context.Context, k key) {
	if err := p.limiter.Wait(ctx); err != nil {
		return
	}
	res, ok := p.run(ctx, k)
	if ctx.Err() != nil {
		return
	}
	if !ok {
		p.forget(k)
		return
	}
	p.mu.Lock()
	p.results[k] = res
	next := p.opts.ProbeInterval
	if res.failed() {
		n := p.failures[k]
		p.failures[k] = n + 1
		next = min(p.opts.ProbeBackoff<<min(n, 16), p.opts.ProbeInterval)
	} else {
		delete(p.failures, k)
	}
	p.mu.Unlock()
	p.queue.AddAfter(k, next+time.Duration(float64(next)*p.opts.ProbeJitter*randFloat()))
	p.onResult(k)
}

func (r *probeResult) failed() bool {
	return (r.liveness != nil && r.liveness.status != True) || (r.auth != nil && r.auth.status != True)
}

// forgetProbes drops the probe state of a Connector that is gone or has no
// class.
func (c *controller) forgetProbes(k key) { c.prober.forget(k) }

// probeSpecs returns the class's liveness probe and the auth probe for the
// Connector's auth type, each with its field path, when they are HTTP or
// API probes.
func probeSpecs(in *inputs) (live *v1alpha1.Probe, liveField string, auth *v1alpha1.Probe, authField string) {
	usable := func(p *v1alpha1.Probe) bool { return p != nil && (p.HTTP != nil || p.API != nil) }
	if lp := in.class.Spec.LivenessProbe; usable(lp) {
		live, liveField = lp, "spec.livenessProbe"
	}
	if in.authType != nil {
		for i, ap := range in.class.Spec.AuthProbes {
			if ap.AuthName == in.authType.Name && usable(ap.Probe) {
				auth, authField = ap.Probe, fmt.Sprintf("spec.authProbes[%d].probe", i)
			}
		}
	}
	return live, liveField, auth, authField
}

// probeConditions returns LivenessReady and AuthReady from the last probe
// result, asking for a probe when there is none for the current objects.
func (c *controller) probeConditions(conn *v1alpha1.Connector, in *inputs) (live, auth v1alpha1.Condition) {
	liveSpec, _, authSpec, _ := probeSpecs(in)
	live = cond(TypeLivenessReady, True, ReasonNonLivenessProbe, "")
	auth = cond(TypeAuthReady, True, ReasonNonAuthProbe, "")
	switch {
	case authSpec != nil && !in.secretOK():
		auth = cond(TypeAuthReady, Unknown, ReasonSecretNotReady, "waiting for spec.auth.secretRef to be ready")
		authSpec = nil
	case authSpec != nil && in.secret == nil:
		// An optional auth type without a Secret: there is no credential
		// to check, and a tool that wants one for the probe's path would
		// fail an anonymous Connector that reads only public content.
		auth = cond(TypeAuthReady, True, ReasonSecretOptional, "")
		authSpec = nil
	}
	if liveSpec == nil && authSpec == nil {
		c.forgetProbes(connectorKey(conn))
		return live, auth
	}
	res := c.prober.result(connectorKey(conn), in.fingerprint(conn))
	if liveSpec != nil {
		live = cond(TypeLivenessReady, Unknown, ReasonProbing, "the liveness probe has not run yet")
		if res != nil && res.liveness != nil {
			live = cond(TypeLivenessReady, res.liveness.status, res.liveness.reason, res.liveness.message)
		}
	}
	if authSpec != nil {
		auth = cond(TypeAuthReady, Unknown, ReasonProbing, "the auth probe has not run yet")
		if res != nil && res.auth != nil {
			auth = cond(TypeAuthReady, res.auth.status, res.auth.reason, res.auth.message)
		}
	}
	return live, auth
}

// runProbes probes one Connector; false when it is gone or has no class.
func (c *controller) runProbes(ctx context.Context, k key) (*probeResult, bool) {
	conn, err := c.opts.Objects.Connector(ctx, k.namespace, k.name)
	if err != nil {
		return nil, false
	}
	in, missing, err := c.load(ctx, conn)
	if err != nil || missing != nil {
		return nil, false
	}
	res := &probeResult{fingerprint: in.fingerprint(conn)}
	liveSpec, liveField, authSpec, authField := probeSpecs(in)
	if liveSpec != nil {
		live := conn
		if !in.secretOK() {
			// Reachability does not wait for the Secret: probe without it.
			live = conn.DeepCopy()
			live.Spec.Auth.SecretRef = nil
		}
		res.liveness = redact(c.probe(ctx, live, in, liveSpec, liveField, judgeLiveness), in.secret)
		c.metrics.probes.WithLabelValues("liveness", result(res.liveness)).Inc()
	}
	if authSpec != nil && in.secretOK() && in.secret != nil {
		res.auth = redact(c.probe(ctx, conn, in, authSpec, authField, judgeAuth), in.secret)
		c.metrics.probes.WithLabelValues("auth", result(res.auth)).Inc()
	}
	return res, true
}

// minRedacted is the shortest Secret value redact looks for: a shorter one
// would match unrelated text.
const minRedacted = 4

// redact removes from an outcome's message every value of the Connector's
// Secret, as it is, base64-encoded, and as the Basic credential, so that a
// message quoting an answer or an error (an upstream that echoes what it
// got, a CEL error that quotes a value) cannot carry the credential into
// a condition or an Event.
func redact(o *outcome, s *corev1.Secret) *outcome {
	if o == nil || s == nil || o.message == "" {
		return o
	}
	var needles []string
	add := func(v string) {
		if len(v) >= minRedacted {
			needles = append(needles, v, base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	for _, v := range s.Data {
		add(string(v))
	}
	for _, v := range s.StringData {
		add(v)
	}
	if u, p := s.Data[corev1.BasicAuthUsernameKey], s.Data[corev1.BasicAuthPasswordKey]; len(p) > 0 {
		add(string(u) + ":" + string(p))
	}
	// Longest first, so a value that holds another is removed whole.
	sort.Slice(needles, func(i, j int) bool { return len(needles[i]) > len(needles[j]) })
	msg := o.message
	for _, n := range needles {
		msg = strings.ReplaceAll(msg, n, "[redacted]")
	}
	return &outcome{o.status, o.reason, msg}
}

func result(o *outcome) string {
	if o.status == True {
		return "ok"
	}
	return "failed"
}

// judge turns a probe's answer (or error) into an outcome.
type judge func(what string, a *answer, err error) *outcome

// judgeLiveness: the tool is reachable when it answers below 500; a 401 or
// 403 still shows it alive (the credential is AuthReady's business), and so
// does a registry token service that refused the credential.
func judgeLiveness(what string, a *answer, err error) *outcome {
	switch {
	case errors.Is(err, registryauth.ErrCredentialRejected):
		return &outcome{True, "", ""}
	case errors.Is(err, proxy.ErrNotConnectorAddress), errors.Is(err, proxy.ErrNotAPIAddress):
		return &outcome{False, ReasonProbeTargetRefused, what + ": " + err.Error()}
	case err != nil:
		return &outcome{False, ReasonToolUnreachable, what + ": " + err.Error()}
	case a.status >= 500:
		return &outcome{False, ReasonToolUnreachable, fmt.Sprintf("%s: answered %d", what, a.status)}
	}
	return &outcome{True, "", ""}
}

// judgeAuth: the credential is valid on a 2xx answer, rejected on 401 or
// 403, or when a registry token service refused it.
func judgeAuth(what string, a *answer, err error) *outcome {
	switch {
	case errors.Is(err, registryauth.ErrCredentialRejected):
		return &outcome{False, ReasonCredentialsRejected, what + ": " + err.Error() + "; check the credential in spec.auth.secretRef"}
	case errors.Is(err, proxy.ErrNotConnectorAddress), errors.Is(err, proxy.ErrNotAPIAddress):
		return &outcome{False, ReasonProbeTargetRefused, what + ": " + err.Error()}
	case err != nil:
		return &outcome{False, ReasonAuthProbeFailed, what + ": " + err.Error()}
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return &outcome{False, ReasonCredentialsRejected, fmt.Sprintf("%s: answered %d; check the credential in spec.auth.secretRef", what, a.status)}
	case a.status < 200 || a.status > 299:
		return &outcome{False, ReasonAuthProbeFailed, fmt.Sprintf("%s: answered %d", what, a.status)}
	}
	return &outcome{True, "", ""}
}

// judgeByCEL judges an answer by the probe's response.cel instead of the
// status code: the probe passes when the expression is true. A request
// that failed is judged as without it. A false or failed expression gives
// the probe's failure reason (CredentialsRejected for an auth probe
// answered 401 or 403).
func judgeByCEL(ctx context.Context, prog cel.Program, expr, field string, fallback judge, liveness bool) judge {
	return func(what string, a *answer, err error) *outcome {
		if err != nil {
			return fallback(what, a, err)
		}
		reason := ReasonToolUnreachable
		if !liveness {
			reason = ReasonAuthProbeFailed
			if a.status == http.StatusUnauthorized || a.status == http.StatusForbidden {
				reason = ReasonCredentialsRejected
			}
		}
		ok, err := evalCEL(ctx, prog, a)
		switch {
		case err != nil:
			return &outcome{False, reason, fmt.Sprintf("%s: answered %d; %s.response.cel %s failed: %v", what, a.status, field, shown(expr), err)}
		case !ok:
			return &outcome{False, reason, fmt.Sprintf("%s: answered %d; %s.response.cel %s is false", what, a.status, field, shown(expr))}
		}
		return &outcome{True, "", ""}
	}
}

// probe runs one probe of the class for conn: its HTTP probe, else its
// API probe.
func (c *controller) probe(ctx context.Context, conn *v1alpha1.Connector, in *inputs, p *v1alpha1.Probe, field string, j judge) *outcome {
	if p.HTTP != nil {
		return c.probeHTTP(ctx, conn, in, p.HTTP, field+".http", j)
	}
	return c.probeAPI(ctx, conn, in, p.API, field+".api", j)
}

// probeAPI runs an API probe: GET the probe's path below the class's API
// address (status.api.address, from spec.api), with the Connector in
// upstream's X-Plugin headers. It is judged as an HTTP probe without
// response.cel; redirects are not followed.
func (c *controller) probeAPI(ctx context.Context, conn *v1alpha1.Connector, in *inputs, spec *v1alpha1.APIProbe, field string, j judge) *outcome {
	api, err := c.resolveAPI(in.class)
	if err == nil && api == nil {
		err = errors.New("spec.api: required by an api probe")
	}
	if err != nil {
		return &outcome{False, ReasonProbeInvalid, fmt.Sprintf("connectorclass %q %s: %v", in.class.Name, field, err)}
	}
	u, err := apiProbeURL(conn, api.URL, spec.Path)
	if err != nil {
		return &outcome{False, ReasonProbeInvalid, fmt.Sprintf("connectorclass %q %s: %v", in.class.Name, field, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	defer cancel()
	req := &probeRequest{method: http.MethodGet, url: u, headers: http.Header{}}
	what := field + ": GET " + u.Scheme + "://" + u.Host + u.EscapedPath()
	a, _, err := c.send(ctx, req, 64<<10, func(r *http.Request) (*http.Response, error) {
		return c.opts.Sender.SendToAPI(ctx, conn, api, r)
	})
	return j(what, a, err)
}

// apiProbeURL renders an API probe's path (a Go template over .Connector,
// with an optional query) and joins it below the API address, keeping the
// address's path prefix, as upstream does.
func apiProbeURL(conn *v1alpha1.Connector, base, tmpl string) (*url.URL, error) {
	rendered, err := render("path", tmpl, probeData(conn))
	if err != nil {
		return nil, err
	}
	p, q, _ := strings.Cut(rendered, "?")
	b, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("spec.api: %q: %w", base, err)
	}
	u := b.JoinPath(p)
	pu, err := url.Parse("?" + q)
	if err != nil || strings.ContainsAny(q, " \r\n#") {
		return nil, fmt.Errorf("path: %q has a bad query", rendered)
	}
	u.RawQuery = pu.RawQuery
	return u, nil
}

// probeHTTP runs one HTTP probe of the class for conn.
func (c *controller) probeHTTP(ctx context.Context, conn *v1alpha1.Connector, in *inputs, spec *v1alpha1.HTTPProbe, field string, j judge) *outcome {
	bodyLimit := int64(64 << 10)
	if spec.Response != nil && spec.Response.CEL != "" {
		prog, err := c.cel.program(in.class, field+".response.cel", spec.Response.CEL)
		if err != nil {
			return &outcome{False, ReasonProbeInvalid, err.Error()}
		}
		j = judgeByCEL(ctx, prog, spec.Response.CEL, field, j, field == livenessField)
		bodyLimit = celMaxBody
	}
	req, err := buildRequest(conn, spec)
	if err != nil {
		return &outcome{False, ReasonProbeInvalid, fmt.Sprintf("connectorclass %q %s: %v", in.class.Name, field, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	defer cancel()
	for hop := 0; ; hop++ {
		what := field + ": " + req.method + " " + req.url.Scheme + "://" + req.url.Host + req.url.EscapedPath()
		a, location, err := c.send(ctx, req, bodyLimit, func(r *http.Request) (*http.Response, error) {
			return c.opts.Sender.SendAs(ctx, conn, r)
		})
		if err == nil && location != nil && !spec.DisableRedirect && hop < maxRedirects {
			req.url = location
			if req.method == http.MethodPost {
				req.method = http.MethodGet
			}
			continue
		}
		return j(what, a, err)
	}
}

// probeRequest is a probe's method, URL and headers.
type probeRequest struct {
	method  string
	url     *url.URL
	headers http.Header
}

// answer is what a probe got back: the status, the headers and up to a
// limit of the body.
type answer struct {
	status int
	header http.Header
	body   []byte
	// truncated is set when the body was longer than the limit.
	truncated bool
}

// probeUserAgent is the User-Agent of probe requests.
const probeUserAgent = "connectors-node-probe"

// unwrapURLError drops the *url.Error wrapper, whose text holds the URL
// and its query.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// send makes one request through do, reading up to bodyLimit of the body;
// location is the redirect target for a 3xx.
func (c *controller) send(ctx context.Context, pr *probeRequest, bodyLimit int64, do func(*http.Request) (*http.Response, error)) (*answer, *url.URL, error) {
	r, err := http.NewRequestWithContext(ctx, pr.method, pr.url.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	r.Header = pr.headers.Clone()
	r.Header.Set("User-Agent", probeUserAgent)
	resp, err := do(r)
	if err != nil {
		return nil, nil, unwrapURLError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", unwrapURLError(err))
	}
	a := &answer{status: resp.StatusCode, header: resp.Header, body: body}
	if int64(len(body)) > bodyLimit {
		a.body, a.truncated = body[:bodyLimit], true
	}
	var loc *url.URL
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if l := resp.Header.Get("Location"); l != "" {
			loc, _ = pr.url.Parse(l)
		}
	}
	return a, loc, nil
}

// buildRequest renders the probe's path and headers (Go templates with
// .Connector) and joins the path to the scheme and host of spec.address,
// or of spec.host and spec.scheme when the probe sets them. As upstream,
// the address's path prefix is not kept; a path outside the Connector's
// addresses is refused when the probe is sent.
func buildRequest(conn *v1alpha1.Connector, spec *v1alpha1.HTTPProbe) (*probeRequest, error) {
	addr, err := url.Parse(conn.Spec.Address)
	if err != nil || addr.Host == "" {
		return nil, fmt.Errorf("connector spec.address %q is not an absolute URL", conn.Spec.Address)
	}
	data := probeData(conn)
	path, err := render("path", spec.Path, data)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	scheme, host := addr.Scheme, addr.Host
	if spec.Scheme != "" {
		scheme = strings.ToLower(spec.Scheme)
	}
	// The host may be a template, as a class whose API is on another host
	// (an address extension) needs; empty means the address's host. The
	// proxy refuses a probe outside the Connector's addresses, whatever it
	// renders.
	rh, err := render("host", spec.Host, data)
	if err != nil {
		return nil, err
	}
	if rh = strings.TrimSpace(rh); rh != "" {
		if strings.ContainsAny(rh, "/?#@ \r\n") || unresolved(rh) {
			return nil, fmt.Errorf("host: %q is not a host[:port]", rh)
		}
		host = rh
		if spec.Scheme == "" {
			scheme = extensionScheme(conn, rh, scheme)
		}
	}
	u, err := url.Parse(scheme + "://" + host + path)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("path: %q does not make a URL", path)
	}
	method := http.MethodGet
	if spec.Method != "" {
		method = strings.ToUpper(spec.Method)
	}
	if method != http.MethodGet && method != http.MethodPost {
		return nil, fmt.Errorf("method: %q is not GET or POST", spec.Method)
	}
	h := http.Header{}
	for i, hd := range spec.HTTPHeaders {
		v, err := render(fmt.Sprintf("httpHeaders[%d]", i), hd.Value, data)
		if err != nil {
			return nil, err
		}
		v = strings.TrimSpace(v)
		if v == "" || unresolved(v) {
			// Such as {{ if .Secret }}…{{ end }}, or upstream's unguarded
			// {{ .Secret.StringData.token }}: the template sees no Secret,
			// and the proxy injects the credential instead.
			continue
		}
		if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(hd.Name, " :\r\n") || hd.Name == "" {
			return nil, fmt.Errorf("httpHeaders[%d]: bad header", i)
		}
		h.Add(hd.Name, v)
	}
	return &probeRequest{method: method, url: u, headers: h}, nil
}

// extensionScheme is the scheme of the Connector's address extension on
// host, so a probe of an API extension speaks its scheme; else fallback.
func extensionScheme(conn *v1alpha1.Connector, host, fallback string) string {
	for _, p := range params(conn.Spec.AddressExtensions) {
		if u, err := url.Parse(p.Value.StringVal); err == nil && strings.EqualFold(u.Host, host) && u.Scheme != "" {
			return strings.ToLower(u.Scheme)
		}
	}
	return fallback
}

// probeData is what probe templates see: the Connector, and as .Secret an
// empty map, never the Secret itself. The credential reaches a probe
// through the proxy, as it reaches every proxied request, so no template
// can copy it into a path or a header the class chose. An empty map is
// false in {{ if .Secret }}, and an unguarded {{ .Secret.StringData.x }},
// as in upstream's examples, renders "<no value>" instead of failing the
// probe; a header holding that is left out (unresolved).
func probeData(conn *v1alpha1.Connector) map[string]any {
	return map[string]any{"Connector": connectorView(conn), "Secret": map[string]any{}}
}

// unresolved reports whether a rendered header or host holds what a
// template prints for a missing value (or what printf makes of one), which
// only a template reading .Secret produces here.
func unresolved(v string) bool {
	return strings.Contains(v, "<no value>") || strings.Contains(v, "%!")
}

// render runs one probe template. Output is bounded like class templates.
func render(field, text string, data map[string]any) (string, error) {
	t, err := template.New(field).Funcs(configgen.FuncMap()).Parse(text)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	var b strings.Builder
	if err := t.Execute(&limitWriter{w: &b, n: 64 << 10}, data); err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return b.String(), nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errors.New("template output too large")
	}
	l.n -= len(p)
	return l.w.Write(p)
}
