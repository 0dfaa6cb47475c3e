package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// The Connectors API gateway: upstream's
// /connectors/v1alpha1/<namespace>/<connector>/path/<api-path>, served on a
// listener of its own (Proxy.NewGatewayServer) to people and automation
// that present their own Kubernetes token. It is one more mode of the
// request pipeline (modeAPI): serve, then exchange with resolveAPI as the
// route, identify and admit stages, then the plan and send every mode
// shares. Its errors are metav1.Status JSON (errors.go).

// APIAuthenticator checks the tokens and access of Connectors API callers.
// *kube.Reviewer built with APIAudiences satisfies it.
type APIAuthenticator interface {
	Authenticator
	// AuthorizeVerb checks that user may verb the Connector
	// namespace/name's subresource (apis/<class>[/<path>]); errors wrap
	// kube.ErrForbidden or kube.ErrUnavailable.
	AuthorizeVerb(ctx context.Context, user kube.User, verb, namespace, name, subresource string) error
}

// GatewayOptions configure Proxy.Gateway.
type GatewayOptions struct {
	// Auth reviews the callers' tokens for the API server's own audiences
	// (people's and ServiceAccounts' tokens, not the pod-bound proxy
	// audience) and their access. Required.
	Auth APIAuthenticator
	// APIPermissions also requires the connectors/apis check, with the
	// request's method as the verb: apis/<class>, or else
	// apis/<class>/<OpenAPI path> (upstream's
	// enable-connector-apis-permissions). Default false: get on the
	// Connector is enough.
	APIPermissions bool
	// WritePassthrough lets POST, PUT, DELETE and PATCH through (upstream's
	// enable-connector-apis-write-passthrough). Default false: they get
	// 405.
	WritePassthrough bool
}

// gateway serves the Connectors API through its Proxy's pipeline.
type gateway struct {
	p    *Proxy
	opts GatewayOptions
}

// Gateway returns the Connectors API handler. Serve it with
// NewGatewayServer.
func (p *Proxy) Gateway(opts GatewayOptions) (http.Handler, error) {
	if opts.Auth == nil {
		return nil, errors.New("proxy: GatewayOptions.Auth is required")
	}
	return &gateway{p: p, opts: opts}, nil
}

// ServeHTTP runs a Connectors API request through the pipeline.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.p.serve(w, r, modeAPI, func(w http.ResponseWriter, r *http.Request) {
		g.p.exchange(w, r, g.resolve)
	})
}

// readMethods are always served; writeMethods only with WritePassthrough.
var (
	readMethods  = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	writeMethods = []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}
)

// methodVerb maps a method to the Kubernetes verb of the connectors/apis
// check, as upstream does.
func methodVerb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	case http.MethodPatch:
		return "patch"
	default:
		return "get"
	}
}

// checkMethod answers 405 for a method the gateway does not serve.
func (g *gateway) checkMethod(method string) error {
	allowed := readMethods
	if g.opts.WritePassthrough {
		allowed = append(append([]string{}, readMethods...), writeMethods...)
	}
	for _, m := range allowed {
		if method == m {
			return nil
		}
	}
	msg := fmt.Sprintf("method %s is not served by the Connectors API", printable(method))
	for _, m := range writeMethods {
		if method == m {
			msg = fmt.Sprintf("method %s is not served by the Connectors API: write passthrough is off (--enable-connector-apis-write-passthrough)", method)
		}
	}
	return &statusError{status: http.StatusMethodNotAllowed, msg: msg,
		header: http.Header{"Allow": {strings.Join(allowed, ", ")}}}
}

// apiRoute is a parsed Connectors API path.
type apiRoute struct {
	key types.NamespacedName
	// rest is the escaped API path after .../path, "/" at least.
	rest string
}

// parseAPIRoute reads /connectors/v1alpha1/<ns>/<name>/path[/<api-path>]
// from an escaped path. A malformed namespace or name, and an API path with
// dot segments (plain or encoded) or bad escapes, are 400; anything that is
// not such a path is 404.
func parseAPIRoute(escaped string) (apiRoute, error) {
	notFound := statusErrorf(http.StatusNotFound,
		"not a Connectors API path: use %s<namespace>/<connector>/path/<api-path>", v1alpha1.APIPathPrefix)
	rest, ok := strings.CutPrefix(escaped, v1alpha1.APIPathPrefix)
	if !ok {
		return apiRoute{}, notFound
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 || parts[2] != "path" {
		return apiRoute{}, notFound
	}
	k := types.NamespacedName{Namespace: parts[0], Name: parts[1]}
	if why := connref.CheckNamespace(k.Namespace); why != "" || k.Namespace == "" {
		return apiRoute{}, statusErrorf(http.StatusBadRequest, "namespace %q in the path is not a valid namespace name", printable(k.Namespace))
	}
	if why := connref.CheckName(k.Name); why != "" || k.Name == "" {
		return apiRoute{}, statusErrorf(http.StatusBadRequest, "connector %q in the path is not a valid object name", printable(k.Name))
	}
	rt := apiRoute{key: k, rest: "/"}
	if len(parts) == 4 {
		rt.rest = "/" + parts[3]
	}
	for _, seg := range strings.Split(rt.rest, "/") {
		s, err := url.PathUnescape(seg)
		if err != nil {
			return apiRoute{}, statusErrorf(http.StatusBadRequest, "the API path has a malformed escape")
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return apiRoute{}, statusErrorf(http.StatusBadRequest, "the API path must not hold ., .. or backslash segments")
		}
	}
	return rt, nil
}

// resolve is the gateway's route, identify and admit: the path names the
// Connector; the caller's bearer token is reviewed for the API server's
// audiences; the caller needs get on the Connector and, with
// APIPermissions, the connectors/apis check; the class's OpenAPI
// operation picks the backend.
func (g *gateway) resolve(r *http.Request) (*routed, error) {
	if r.URL.IsAbs() || r.URL.Host != "" {
		return nil, statusErrorf(http.StatusBadRequest, "the Connectors API is not a forward proxy")
	}
	if r.Header.Get("Upgrade") != "" {
		return nil, statusErrorf(http.StatusBadRequest, "the Connectors API does not switch protocols")
	}
	rt, err := parseAPIRoute(r.URL.EscapedPath())
	if err != nil {
		return nil, err
	}
	if err := g.checkMethod(r.Method); err != nil {
		return nil, err
	}
	token, err := bearerToken(r)
	if err != nil {
		return nil, err
	}
	user, err := g.p.authenticate(r.Context(), g.opts.Auth, token, gatewayChallenge)
	if err != nil {
		return nil, err
	}
	// The connection has carried a reviewed token: it is no longer held to
	// the unauthenticated limits (people have no pod to bind it to).
	markAuthenticated(r.Context())
	conn, err := g.p.authorizedConnector(r.Context(), g.opts.Auth, user, rt.key)
	if err != nil {
		return nil, err
	}
	class, api, err := g.classAPI(r.Context(), conn)
	if err != nil {
		return nil, err
	}
	op, found := api.find(r.Method, rt.rest)
	if g.opts.APIPermissions {
		if err := g.authorizeAPI(r.Context(), user, conn, op, found, r.Method); err != nil {
			return nil, err
		}
	}
	if !found {
		op = operation{provider: providerProxy}
	}
	pl := &plan{mode: modeAPI, dropAuthorization: true, token: token,
		dropHeaders: []string{HeaderPluginMeta, HeaderPluginAuth, HeaderPluginSecret}}
	if op.provider == providerAPI {
		return g.routeToClassAPI(r, pl, conn, class, rt.rest)
	}
	raw, field, err := operationAddress(conn, op)
	if err != nil {
		return nil, err
	}
	addr, target, err := g.p.joinTarget(conn, raw, field, rt.rest, r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	pl.target = target
	pl.location = &locationRewrite{backend: addr, base: base + v1alpha1.APIPath(conn.Namespace, conn.Name)}
	return &routed{plan: pl, conn: conn, addr: addr, injects: true}, nil
}

// gatewayChallenge answers a missing or rejected token at the gateway.
var gatewayChallenge = challenge{status: http.StatusUnauthorized, header: "WWW-Authenticate", scheme: "Bearer"}

// bearerToken reads the caller's token: upstream's Connectors API takes
// Authorization: Bearer only.
func bearerToken(r *http.Request) (string, error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", gatewayChallenge.fail("credentials required: Authorization: Bearer <kubernetes token>", nil)
	}
	scheme, rest, _ := strings.Cut(v, " ")
	tok := strings.TrimSpace(rest)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", gatewayChallenge.fail("malformed Authorization: use Bearer <kubernetes token>", nil)
	}
	return tok, nil
}

// classAPI loads the Connector's class and its parsed OpenAPI description;
// a Connector without a class, or whose class is gone, has none.
func (g *gateway) classAPI(ctx context.Context, conn *v1alpha1.Connector) (*v1alpha1.ConnectorClass, *classAPI, error) {
	if conn.Spec.ConnectorClassName == "" {
		return nil, &classAPI{}, nil
	}
	class, err := g.p.opts.Objects.ConnectorClass(ctx, conn.Spec.ConnectorClassName)
	if errors.Is(err, kube.ErrNotFound) {
		return nil, &classAPI{}, nil
	}
	if err != nil {
		return nil, nil, objectError(conn.Key(), "connectorclass", err)
	}
	api := g.p.memos.classAPI(class)
	if api.err != nil {
		return nil, nil, &statusError{status: http.StatusBadGateway,
			msg: fmt.Sprintf("connectorclass %q: %v", class.Name, api.err)}
	}
	return class, api, nil
}

// authorizeAPI is the connectors/apis check: the method's verb on
// apis/<class>, or else on apis/<class>/<OpenAPI path> when the request
// matches a path of the class's description, as upstream checks it.
func (g *gateway) authorizeAPI(ctx context.Context, user kube.User, conn *v1alpha1.Connector, op operation, found bool, method string) error {
	verb := methodVerb(method)
	sub := v1alpha1.APISubresource
	if conn.Spec.ConnectorClassName != "" {
		sub += "/" + conn.Spec.ConnectorClassName
	}
	err := g.opts.Auth.AuthorizeVerb(ctx, user, verb, conn.Namespace, conn.Name, sub)
	if errors.Is(err, kube.ErrForbidden) && found && conn.Spec.ConnectorClassName != "" {
		err = g.opts.Auth.AuthorizeVerb(ctx, user, verb, conn.Namespace, conn.Name, sub+"/"+strings.TrimPrefix(op.template, "/"))
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kube.ErrUnavailable):
		return apiUnavailable(err)
	case errors.Is(err, kube.ErrForbidden):
		return &statusError{status: http.StatusForbidden,
			msg: fmt.Sprintf("%s on %s/%s of connector %q denied", verb, v1alpha1.ConnectorResource, sub, conn.Key()), err: err}
	default:
		return &statusError{status: http.StatusInternalServerError, msg: "access review failed", err: err}
	}
}

// operationAddress is the address an x-provider-type proxy operation goes
// to: spec.address when x-openapi-address is empty, the address extension
// it names, or the http(s) URL it is. A missing extension or a bad URL is
// a 502 naming the field.
func operationAddress(conn *v1alpha1.Connector, op operation) (raw, field string, err error) {
	switch {
	case op.address == "":
		return conn.Spec.Address, "spec.address", nil
	case strings.HasPrefix(op.address, "http://") || strings.HasPrefix(op.address, "https://"):
		return op.address, fmt.Sprintf("x-openapi-address of %s", op.template), nil
	}
	for _, ext := range conn.Spec.AddressExtensions {
		if ext.Name != op.address {
			continue
		}
		var s string
		if json.Unmarshal(ext.Value.Raw, &s) != nil || s == "" {
			break
		}
		return s, fmt.Sprintf("spec.addressExtensions[%s]", op.address), nil
	}
	return "", "", &statusError{status: http.StatusBadGateway,
		msg: fmt.Sprintf("connector %q has no address extension %q, which x-openapi-address of %s names", conn.Key(), op.address, op.template)}
}

// routeToClassAPI plans an x-provider-type api request: to the class's
// API service (spec.api) with the API path joined below its address, the
// Connector in upstream's X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret
// headers, verified with spec.api's CACerts. The plan is complete: the
// Connector's own credential and CA play no part.
func (g *gateway) routeToClassAPI(r *http.Request, pl *plan, conn *v1alpha1.Connector, class *v1alpha1.ConnectorClass, rest string) (*routed, error) {
	if class == nil || class.Spec.API == nil {
		return nil, &statusError{status: http.StatusBadGateway,
			msg: fmt.Sprintf("connector %q: its connectorclass has no spec.api for an x-provider-type api operation", conn.Key())}
	}
	api, err := v1alpha1.ResolveDestination("spec.api", class.Spec.API.Destination, g.p.opts.ClusterDomain)
	if err != nil {
		return nil, &statusError{status: http.StatusBadGateway, msg: fmt.Sprintf("connectorclass %q: %v", class.Name, err)}
	}
	base, err := url.Parse(api)
	if err != nil || base.Host == "" || base.Scheme != "http" && base.Scheme != "https" {
		return nil, &statusError{status: http.StatusBadGateway, msg: fmt.Sprintf("connectorclass %q: spec.api does not resolve to an http(s) URL", class.Name)}
	}
	target, err := url.Parse(strings.TrimSuffix(base.Scheme+"://"+base.Host+base.EscapedPath(), "/") + rest)
	if err != nil || !underAPI(base, target) {
		return nil, statusErrorf(http.StatusBadRequest, "the API path escapes the connectorclass API's address")
	}
	target.RawQuery = r.URL.RawQuery
	pl.target = target
	pl.connector = conn.Key()
	pl.caPEM = []byte(class.Spec.API.CACerts)
	h := http.Header{}
	if err := g.p.pluginHeaders(r.Context(), conn, h); err != nil {
		return nil, err
	}
	for _, k := range []string{HeaderPluginMeta, HeaderPluginAuth, HeaderPluginSecret} {
		if v := h.Get(k); v != "" {
			pl.headers = append(pl.headers, policy.Value{Key: k, Value: v})
		}
	}
	if v := h.Get(HeaderPluginSecret); v != "" {
		pl.secrets = append(pl.secrets, v)
		if s, err := g.p.secret(r.Context(), conn); err == nil && s != nil {
			for _, b := range s.Data {
				pl.secrets = append(pl.secrets, string(b), base64.StdEncoding.EncodeToString(b))
			}
		}
	}
	// conn stays nil: the plan is complete, planConnector adds nothing.
	return &routed{plan: pl}, nil
}
