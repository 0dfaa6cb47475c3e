package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// The ConnectorClass Rego hooks (package policy): a class's authExtractor
// finds the client's token in a reverse request, and an auth type's
// generator says how the Connector's credential goes into the request.

// classPolicies returns the compiled policies of a Connector's class, or
// nil when the class does not exist (the Connector then works as a class
// without hooks; the CSI side reports the missing class).
func (p *Proxy) classPolicies(ctx context.Context, c *v1alpha1.Connector) (*policy.Class, error) {
	if c.Spec.ConnectorClassName == "" {
		return nil, nil
	}
	cc, err := p.opts.Objects.ConnectorClass(ctx, c.Spec.ConnectorClassName)
	if errors.Is(err, kube.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, objectError(c.Key(), "connectorclass", err)
	}
	return p.opts.Policies.Class(cc), nil
}

// reverseClientToken finds the client's token of a reverse request: with
// the class's authExtractor when it has one and it yields a token, else in
// Authorization. A broken extractor answers 401 naming the class and rule.
func (p *Proxy) reverseClientToken(r *http.Request, key types.NamespacedName) (string, error) {
	x, err := p.extractor(r.Context(), key)
	if err != nil {
		return "", err
	}
	if x != nil {
		req := &policy.Request{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header, Query: r.URL.Query()}
		if x.ReadsBody() {
			if req.Body, err = p.bufferBody(r, "the class's authExtractor reads the request body"); err != nil {
				return "", err
			}
		}
		tok, err := x.Extract(r.Context(), req)
		if err != nil {
			return "", reverseChallenge.fail(err.Error(), nil)
		}
		if tok != "" {
			if x.ReadsBody() {
				if err := removeFromBody(r, tok); err != nil {
					return "", err
				}
			}
			return tok, nil
		}
	}
	tok, err := reverseToken(r)
	if err != nil {
		return "", reverseChallenge.credentialError(err)
	}
	return tok, nil
}

// extractor looks up the class extractor of the Connector key names. The
// Connector is read before the caller is authenticated, so any failure
// here falls back to the plain Authorization token and leaks nothing; only
// a broken extractor is reported.
func (p *Proxy) extractor(ctx context.Context, key types.NamespacedName) (*policy.Extractor, error) {
	conn, err := p.opts.Objects.Connector(ctx, key.Namespace, key.Name)
	if err != nil {
		return nil, nil //nolint:nilerr // admit reports a missing Connector after authentication
	}
	cls, err := p.classPolicies(ctx, conn)
	if err != nil || cls == nil {
		return nil, nil //nolint:nilerr // as above
	}
	x, err := cls.Extractor()
	if err != nil {
		return nil, reverseChallenge.fail(err.Error(), nil)
	}
	return x, nil
}

// generation is a planned generator evaluation: the generator and the
// Secret data it reads.
type generation struct {
	gen  *policy.Generator
	data map[string]string
}

// planCredential decides how a Connector's credential is injected: by its
// auth type's generator when the class has one, else as the Authorization
// value of its Secret type.
func (p *Proxy) planCredential(ctx context.Context, pl *plan, c *v1alpha1.Connector) error {
	gen, err := p.generator(ctx, c)
	if err != nil {
		return err
	}
	if gen == nil {
		pl.credential, err = p.credential(ctx, c)
		return err
	}
	s, err := p.secret(ctx, c)
	if err != nil || s == nil {
		return err
	}
	data := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		data[k] = string(v)
	}
	pl.generation = &generation{gen: gen, data: data}
	return nil
}

// generator returns the generator of the Connector's auth type, or nil.
func (p *Proxy) generator(ctx context.Context, c *v1alpha1.Connector) (*policy.Generator, error) {
	cls, err := p.classPolicies(ctx, c)
	if err != nil || cls == nil {
		return nil, err
	}
	gen, err := cls.Generator(authTypeName(ctx, c, p.opts.Objects))
	if err != nil {
		return nil, &statusError{status: http.StatusBadGateway, msg: err.Error()}
	}
	return gen, nil
}

// authTypeName is the Connector's spec.auth.name, or the class's only
// auth type when it names none.
func authTypeName(ctx context.Context, c *v1alpha1.Connector, objects kube.Objects) string {
	if c.Spec.Auth.Name != "" {
		return c.Spec.Auth.Name
	}
	cc, err := objects.ConnectorClass(ctx, c.Spec.ConnectorClassName)
	if err == nil && len(cc.Spec.Auth.Types) == 1 {
		return cc.Spec.Auth.Types[0].Name
	}
	return ""
}

// generate evaluates the planned generator on the outbound request and
// applies what it yields. It returns the request to send, whose body may
// have been replaced.
func (p *Proxy) generate(r *http.Request, pl *plan) (*http.Request, error) {
	g := pl.generation
	h := r.Header.Clone()
	h.Del("Proxy-Authorization")
	if pl.dropAuthorization {
		h.Del("Authorization")
	}
	removeTokenHeaders(h, pl.token)
	req := &policy.Request{Method: r.Method, Path: pl.target.Path, Host: pl.target.Host, Header: h, Query: pl.target.Query()}
	if g.gen.ReadsBody() {
		body, err := p.bufferBody(r, "the generator reads the request body")
		if err != nil {
			return nil, err
		}
		req.Body = body
	}
	in, err := g.gen.Generate(r.Context(), g.data, req)
	if err != nil {
		return nil, &statusError{status: http.StatusBadGateway, msg: err.Error()}
	}
	pl.secrets = append(pl.secrets, in.Secrets()...)
	switch in.Position {
	case policy.PositionHeader:
		pl.headers = in.Values
	case policy.PositionQuery:
		pl.target.RawQuery = setQuery(pl.target.RawQuery, in.Values)
	case policy.PositionBody:
		if err := p.mergeBody(r, in); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// setQuery replaces the parameters named in vals, keeping the others in
// their order.
func setQuery(raw string, vals []policy.Value) string {
	names := make(map[string]bool, len(vals))
	for _, v := range vals {
		names[v.Key] = true
	}
	var out []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if name, err := url.QueryUnescape(k); err == nil && names[name] {
			continue
		}
		out = append(out, part)
	}
	for _, v := range vals {
		out = append(out, url.QueryEscape(v.Key)+"="+url.QueryEscape(v.Value))
	}
	return strings.Join(out, "&")
}

// bufferBody reads the request body up to PolicyBodyLimit, leaves it
// readable again for the upstream, and decodes it for a policy: a JSON
// value or form fields; nil for an empty body or another content type.
func (p *Proxy) bufferBody(r *http.Request, why string) (any, error) {
	raw, err := p.readBody(r, why)
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	switch mediaType(r.Header.Get("Content-Type")) {
	case policy.ContentTypeJSON:
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return nil, statusErrorf(http.StatusBadRequest, "request body is not valid JSON")
		}
		return v, nil
	case policy.ContentTypeForm:
		q, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, statusErrorf(http.StatusBadRequest, "request body is not a valid form")
		}
		return formValue(q), nil
	}
	return nil, nil
}

func formValue(q url.Values) map[string]any {
	out := make(map[string]any, len(q))
	for k, vs := range q {
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		out[k] = l
	}
	return out
}

// readBody reads the whole body, at most PolicyBodyLimit bytes (413
// beyond), and puts the bytes back as the request body.
func (p *Proxy) readBody(r *http.Request, why string) ([]byte, error) {
	if b, ok := r.Body.(*bufferedBody); ok {
		return b.raw, nil
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	limit := p.opts.PolicyBodyLimit
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &statusError{status: http.StatusBadRequest, msg: "reading the request body failed", err: err}
	}
	if int64(len(raw)) > limit {
		return nil, statusErrorf(http.StatusRequestEntityTooLarge, "request body over %d bytes: %s", limit, why)
	}
	setBody(r, raw)
	return raw, nil
}

// bufferedBody is a request body the proxy has read and holds whole.
type bufferedBody struct {
	*bytes.Reader
	raw []byte
}

func (b *bufferedBody) Close() error { return nil }

func setBody(r *http.Request, raw []byte) {
	r.Body = &bufferedBody{Reader: bytes.NewReader(raw), raw: raw}
	r.ContentLength = int64(len(raw))
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// mergeBody merges a generator's values into a JSON object or form body of
// the declared content type (or the request's, or JSON). A body over the
// limit is refused (413), never sent without the credential.
func (p *Proxy) mergeBody(r *http.Request, in *policy.Injection) error {
	raw, err := p.readBody(r, "the generator injects into the request body")
	if err != nil {
		return err
	}
	have := mediaType(r.Header.Get("Content-Type"))
	want := in.ContentType
	if want == "" {
		want = have
		if want != policy.ContentTypeForm {
			want = policy.ContentTypeJSON
		}
	}
	if len(raw) > 0 && have != want {
		return statusErrorf(http.StatusBadGateway,
			"the generator injects into a %s body, but the request body is %q", want, have)
	}
	var out []byte
	switch want {
	case policy.ContentTypeJSON:
		obj := map[string]any{}
		if len(bytes.TrimSpace(raw)) > 0 {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if d.Decode(&obj) != nil {
				return statusErrorf(http.StatusBadRequest, "request body is not a JSON object")
			}
		}
		for _, v := range in.Values {
			obj[v.Key] = v.Value
		}
		out, err = json.Marshal(obj)
		if err != nil {
			return &statusError{status: http.StatusInternalServerError, msg: "encoding the request body failed", err: err}
		}
	default:
		q, err := url.ParseQuery(string(raw))
		if err != nil {
			return statusErrorf(http.StatusBadRequest, "request body is not a valid form")
		}
		for _, v := range in.Values {
			q.Set(v.Key, v.Value)
		}
		out = []byte(q.Encode())
	}
	if int64(len(out)) > p.opts.PolicyBodyLimit {
		return statusErrorf(http.StatusRequestEntityTooLarge,
			"request body over %d bytes with the injected credential", p.opts.PolicyBodyLimit)
	}
	r.Header.Set("Content-Type", want)
	setBody(r, out)
	return nil
}

// removeTokenHeaders deletes every header that carries the client's token
// (in its value, or as the password of a Basic value): the token never
// goes upstream, whichever header the client put it in.
func removeTokenHeaders(h http.Header, token string) {
	if token == "" {
		return
	}
	for k, vs := range h {
		if carriesToken(vs, token) {
			delete(h, k)
			continue
		}
		for _, v := range vs {
			if strings.Contains(v, token) {
				delete(h, k)
				break
			}
		}
	}
}

// removeTokenQuery deletes the query parameters that carry the client's
// token.
func removeTokenQuery(u *url.URL, token string) {
	if token == "" || u.RawQuery == "" {
		return
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		if strings.Contains(u.RawQuery, token) {
			u.RawQuery = ""
		}
		return
	}
	var drop []string
	for k, vs := range q {
		for _, v := range vs {
			if strings.Contains(v, token) || strings.Contains(k, token) {
				drop = append(drop, k)
				break
			}
		}
	}
	for _, k := range drop {
		u.RawQuery = dropParam(u.RawQuery, k)
	}
}

func dropParam(raw, name string) string {
	var out []string
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(k); part == "" || (err == nil && n == name) {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, "&")
}

// removeFromBody deletes the JSON object fields or form fields whose value
// carries the client's token from a buffered body; a body that still holds
// it is refused.
func removeFromBody(r *http.Request, token string) error {
	b, ok := r.Body.(*bufferedBody)
	if !ok || !bytes.Contains(b.raw, []byte(token)) {
		return nil
	}
	var out []byte
	switch mediaType(r.Header.Get("Content-Type")) {
	case policy.ContentTypeJSON:
		obj := map[string]any{}
		d := json.NewDecoder(bytes.NewReader(b.raw))
		d.UseNumber()
		if d.Decode(&obj) == nil {
			for k, v := range obj {
				if s, ok := v.(string); ok && strings.Contains(s, token) {
					delete(obj, k)
				}
			}
			out, _ = json.Marshal(obj)
		}
	case policy.ContentTypeForm:
		if q, err := url.ParseQuery(string(b.raw)); err == nil {
			for k, vs := range q {
				for _, v := range vs {
					if strings.Contains(v, token) {
						q.Del(k)
						break
					}
				}
			}
			out = []byte(q.Encode())
		}
	}
	if out == nil || bytes.Contains(out, []byte(token)) {
		return statusErrorf(http.StatusBadRequest, "the request body carries the client token where the proxy cannot remove it")
	}
	setBody(r, out)
	return nil
}

// secret reads the Connector's Secret, or nil when it names none. The
// Secret must live in the Connector's namespace.
func (p *Proxy) secret(ctx context.Context, c *v1alpha1.Connector) (*corev1.Secret, error) {
	ref := c.Spec.Auth.SecretRef
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	if ref.Namespace != "" && ref.Namespace != c.Namespace {
		return nil, statusErrorf(http.StatusInternalServerError,
			"connector %q: auth secret must be in the connector's namespace", c.Key())
	}
	s, err := p.opts.Objects.Secret(ctx, c.Namespace, ref.Name)
	if err != nil {
		return nil, objectError(c.Key(), "auth secret", err)
	}
	return s, nil
}
