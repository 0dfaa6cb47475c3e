package kube

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// User is an authenticated Kubernetes user.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// ServiceAccountUser is the user a pod's ServiceAccount acts as.
func ServiceAccountUser(namespace, name string) User {
	return User{
		Name:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
}

// ReviewerOptions configure NewReviewer. Zero values take the defaults.
type ReviewerOptions struct {
	// Client calls TokenReview and SubjectAccessReview. Required.
	Client kubernetes.Interface
	// Audience a token must be issued for. Required unless APIAudiences.
	Audience string
	// APIAudiences reviews tokens for the API server's own audiences (a
	// TokenReview that names none), as the API server authenticates its
	// own clients, such as a ServiceAccount token mounted into a pod.
	// Audience must then be empty.
	APIAudiences bool
	// ProxyPermission also requires `get` on the connectors/proxy subresource.
	ProxyPermission bool
	// PodProxyPermission, with ProxyPermission, also accepts `get` on the
	// pod-scoped subresource connectors/proxy/v1/pod/<ns>/<pod> that an
	// approval grants, for a user whose token is bound to that pod.
	PodProxyPermission bool
	// TokenTTL bounds how long a token review is cached; a token is never
	// cached past its own expiry. Default 5m.
	TokenTTL time.Duration
	// AllowTTL is how long an allowed access decision is cached. Default 30s.
	AllowTTL time.Duration
	// DenyTTL is how long a rejected token or denied access is cached. Default 5s.
	DenyTTL time.Duration
	// MaxEntries bounds each of the token and access caches. Default 10000.
	MaxEntries int
	// APITimeout bounds one TokenReview or SubjectAccessReview call. Default 10s.
	APITimeout time.Duration
	// Metrics counts cache hits, misses and API calls. Default: not counted.
	Metrics *ReviewMetrics
	// MetricsPrefix prefixes the review label of this Reviewer's series in
	// Metrics and in the Breaker's stale serves ("ops-" gives ops-token and
	// ops-access), so that two Reviewers may share one ReviewMetrics.
	// Default none: token and access.
	MetricsPrefix string
	// OutageGrace is how long past its TTL an accepted token or an allowed
	// access decision keeps serving while the API server is unavailable.
	// Denials are never served past their TTL. Default DefaultOutageGrace.
	OutageGrace time.Duration
	// Breaker fails uncached reviews fast while the API server is known
	// unreachable. Default: a Breaker of its own that probes Client.
	Breaker *Breaker
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Reviewer checks tokens (TokenReview) and access to Connectors
// (SubjectAccessReview), caching both. It is safe for concurrent use.
type Reviewer struct {
	opts   ReviewerOptions
	tokens *staleCache
	access *staleCache
	// tokenKind and accessKind label the two caches in metrics.
	tokenKind, accessKind string
	// deletedPods holds the UIDs of pods seen deleted (ForgetPod) for as
	// long as a token review cached before the deletion may live.
	deletedPods *utilcache.LRUExpireCache
}

// NewReviewer builds a Reviewer.
func NewReviewer(opts ReviewerOptions) (*Reviewer, error) {
	if opts.Client == nil {
		return nil, errors.New("reviewer: Client is required")
	}
	switch {
	case opts.Audience == "" && !opts.APIAudiences:
		return nil, errors.New("reviewer: Audience is required")
	case opts.Audience != "" && opts.APIAudiences:
		return nil, errors.New("reviewer: Audience and APIAudiences exclude each other")
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 5 * time.Minute
	}
	if opts.AllowTTL <= 0 {
		opts.AllowTTL = 30 * time.Second
	}
	if opts.DenyTTL <= 0 {
		opts.DenyTTL = 5 * time.Second
	}
	setCacheDefaults(&opts.MaxEntries, &opts.APITimeout, &opts.Now)
	if opts.Metrics == nil {
		opts.Metrics = NewReviewMetrics(nil)
	}
	if opts.OutageGrace <= 0 {
		opts.OutageGrace = DefaultOutageGrace
	}
	if opts.Breaker == nil {
		opts.Breaker = defaultBreaker(opts.Client, opts.Now)
	}
	tokenKind, accessKind := opts.MetricsPrefix+"token", opts.MetricsPrefix+"access"
	return &Reviewer{
		opts:        opts,
		tokens:      newStaleCache(tokenKind, opts.MaxEntries, opts.OutageGrace, opts.APITimeout, opts.Breaker, opts.Now),
		access:      newStaleCache(accessKind, opts.MaxEntries, opts.OutageGrace, opts.APITimeout, opts.Breaker, opts.Now),
		tokenKind:   tokenKind,
		accessKind:  accessKind,
		deletedPods: utilcache.NewLRUExpireCacheWithClock(opts.MaxEntries, clockFunc(opts.Now)),
	}, nil
}

// setCacheDefaults sets the defaults the reviewer and the pod binding
// share: 10,000 cache entries, a 10 s API timeout and the wall clock.
func setCacheDefaults(maxEntries *int, apiTimeout *time.Duration, now *func() time.Time) {
	if *maxEntries <= 0 {
		*maxEntries = 10000
	}
	if *apiTimeout <= 0 {
		*apiTimeout = 10 * time.Second
	}
	if *now == nil {
		*now = time.Now
	}
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

type tokenResult struct {
	user User
	err  error
}

// Authenticate reviews a token for the Reviewer's audience. Errors wrap
// ErrUnauthenticated or ErrUnavailable. The token never appears in an error.
func (r *Reviewer) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" {
		return User{}, fmt.Errorf("empty token: %w", ErrUnauthenticated)
	}
	// The digest's bytes are the key as they are: a hex form would cost
	// an encoding per request and buy nothing.
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	v, hit, err := r.tokens.get(ctx, key, func(ctx context.Context) (answer, error) {
		res, ttl, err := r.reviewToken(ctx, token)
		exp, _ := tokenExpiry(token)
		return answer{val: res, ttl: ttl, keep: res.err == nil, limit: exp}, err
	})
	r.opts.Metrics.lookup(r.tokenKind, hit)
	if err != nil {
		return User{}, err
	}
	res := v.(tokenResult)
	if res.err == nil && r.podDeleted(res.user) {
		r.tokens.forget(key)
		return User{}, fmt.Errorf("token review: the token's pod %s was deleted: %w", first(res.user.Extra[ExtraPodName]), ErrUnauthenticated)
	}
	return res.user, res.err
}

// ForgetPod ends the tokens bound to the pod with uid, which was deleted:
// their cached reviews are refused from now on, before their TTL, also
// while the API server is unavailable.
func (r *Reviewer) ForgetPod(uid string) {
	if uid != "" {
		r.deletedPods.Add(uid, struct{}{}, r.opts.TokenTTL+r.opts.OutageGrace)
	}
}

// podDeleted reports whether user's token is bound to a pod seen deleted.
func (r *Reviewer) podDeleted(user User) bool {
	uid := first(user.Extra[ExtraPodUID])
	if uid == "" {
		return false
	}
	_, deleted := r.deletedPods.Get(uid)
	return deleted
}

func (r *Reviewer) reviewToken(ctx context.Context, token string) (tokenResult, time.Duration, error) {
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	if !r.opts.APIAudiences {
		tr.Spec.Audiences = []string{r.opts.Audience}
	}
	out, err := r.opts.Client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	r.opts.Metrics.call(r.tokenKind, err)
	if err != nil {
		return tokenResult{}, 0, fmt.Errorf("token review: %w", classifyReview(err))
	}
	if !out.Status.Authenticated {
		if err := r.opts.Breaker.doubtRefusal("token review: not authenticated"); err != nil {
			return tokenResult{}, 0, fmt.Errorf("token review: %w", err)
		}
	}
	if !out.Status.Authenticated || !r.opts.APIAudiences && !slices.Contains(out.Status.Audiences, r.opts.Audience) {
		return tokenResult{err: fmt.Errorf("token review: %w", ErrUnauthenticated)}, r.opts.DenyTTL, nil
	}
	u := out.Status.User
	user := User{Name: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		user.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			user.Extra[k] = v
		}
	}
	ttl := r.opts.TokenTTL
	if exp, ok := tokenExpiry(token); ok {
		if left := exp.Sub(r.opts.Now()); left < ttl {
			ttl = left
		}
	}
	if ttl <= 0 {
		return tokenResult{err: fmt.Errorf("token expired: %w", ErrUnauthenticated)}, r.opts.DenyTTL, nil
	}
	return tokenResult{user: user}, ttl, nil
}

// tokenExpiry reads the exp claim of a JWT without verifying it; it is used
// only to bound the cache lifetime of a token the API server accepted.
func tokenExpiry(token string) (time.Time, bool) {
	c, ok := TokenClaims(token)
	return c.Expiry, ok && !c.Expiry.IsZero()
}

// Authorize checks that user may `get` the Connector namespace/name (and its
// proxy subresource when that option is on). Errors wrap ErrForbidden, naming
// the connector, or ErrUnavailable.
func (r *Reviewer) Authorize(ctx context.Context, user User, namespace, name string) error {
	if err := r.allowed(ctx, user, namespace, name, ""); err != nil {
		return err
	}
	if !r.opts.ProxyPermission {
		return nil
	}
	err := r.allowed(ctx, user, namespace, name, v1alpha1.ProxySubresource)
	if err == nil || !r.opts.PodProxyPermission || !errors.Is(err, ErrForbidden) {
		return err
	}
	pod := first(user.Extra[ExtraPodName])
	podNS, ok := serviceAccountNamespace(user.Name)
	if pod == "" || !ok {
		return err
	}
	if r.allowed(ctx, user, namespace, name, v1alpha1.PodProxySubresource(podNS, pod)) == nil {
		return nil
	}
	// The error names connectors/proxy: the permission the pod lacks.
	return err
}

// PodUser is the user of a pod's ServiceAccount token bound to the pod,
// as the TokenReview of its kubelet-projected token names it.
func PodUser(pod PodRef, serviceAccount string) User {
	u := ServiceAccountUser(pod.Namespace, serviceAccount)
	u.Extra = map[string][]string{ExtraPodName: {pod.Name}}
	if pod.UID != "" {
		u.Extra[ExtraPodUID] = []string{pod.UID}
	}
	return u
}

// AuthorizeVerb checks that user may verb the Connector namespace/name, or
// its subresource when that is not empty (such as apis/<class>, the
// Connectors API check). Errors wrap ErrForbidden, naming the verb and
// resource, or ErrUnavailable.
func (r *Reviewer) AuthorizeVerb(ctx context.Context, user User, verb, namespace, name, subresource string) error {
	return r.decide(ctx, user, decision{verb: verb, namespace: namespace, name: name, subresource: subresource})
}

// AuthorizePath checks that user may use verb on the non-resource URL path
// (such as get /metrics), as the API server's RBAC decides for its own
// paths. Errors wrap ErrForbidden, naming the path, or ErrUnavailable.
func (r *Reviewer) AuthorizePath(ctx context.Context, user User, verb, path string) error {
	return r.decide(ctx, user, decision{verb: verb, path: path})
}

func (r *Reviewer) allowed(ctx context.Context, user User, namespace, name, subresource string) error {
	return r.decide(ctx, user, decision{verb: "get", namespace: namespace, name: name, subresource: subresource})
}

// decision is what an access review asks: verb on a Connector (and its
// subresource), or on a non-resource URL when path is set. It is a value,
// so that asking a cached decision allocates nothing for it.
type decision struct {
	verb, namespace, name, subresource string
	path                               string
}

func (d decision) key(u User) string {
	if d.path != "" {
		return accessKey(u, "path", d.verb, d.path)
	}
	return accessKey(u, "connector", d.verb, d.namespace, d.name, d.subresource)
}

func (d decision) attributes(spec *authorizationv1.SubjectAccessReviewSpec) {
	if d.path != "" {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: d.verb, Path: d.path}
		return
	}
	spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
		Namespace:   d.namespace,
		Verb:        d.verb,
		Group:       v1alpha1.GroupVersion.Group,
		Resource:    v1alpha1.ConnectorResource,
		Subresource: d.subresource,
		Name:        d.name,
	}
}

func (d decision) forbidden(user string) *ForbiddenError {
	if d.path != "" {
		return &ForbiddenError{User: user, Verb: d.verb, Path: d.path}
	}
	what := v1alpha1.ConnectorResource
	if d.subresource != "" {
		what += "/" + d.subresource
	}
	return &ForbiddenError{User: user, Verb: d.verb, Resource: what, Namespace: d.namespace, Name: d.name}
}

// decide answers d for user from the access cache, or with a
// SubjectAccessReview.
func (r *Reviewer) decide(ctx context.Context, user User, d decision) error {
	v, hit, err := r.access.get(ctx, d.key(user), func(ctx context.Context) (answer, error) {
		deny, err := r.review(ctx, user, d)
		if err != nil {
			return answer{}, err
		}
		if deny != nil {
			return answer{val: deny, ttl: r.opts.DenyTTL}, nil
		}
		return answer{ttl: r.opts.AllowTTL, keep: true}, nil
	})
	r.opts.Metrics.lookup(r.accessKind, hit)
	if err != nil {
		return err
	}
	if deny, ok := v.(error); ok {
		return deny
	}
	return nil
}

func (r *Reviewer) review(ctx context.Context, user User, d decision) (deny, err error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = v
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user.Name,
		UID:    user.UID,
		Groups: user.Groups,
		Extra:  extra,
	}}
	d.attributes(&sar.Spec)
	out, err := r.opts.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	r.opts.Metrics.call(r.accessKind, err)
	if err != nil {
		return nil, fmt.Errorf("access review: %w", classifyReview(err))
	}
	if !out.Status.Allowed || out.Status.Denied {
		// An explicit denial stands; no opinion right after an outage may
		// be RBAC still loading.
		if !out.Status.Denied {
			if err := r.opts.Breaker.doubtRefusal("access review: not allowed"); err != nil {
				return nil, fmt.Errorf("access review: %w", err)
			}
		}
		return d.forbidden(user.Name), nil
	}
	return nil, nil
}

// ForbiddenError says who may not get which connector, or use which
// non-resource URL. It wraps ErrForbidden.
type ForbiddenError struct {
	User      string
	Resource  string // connectors or connectors/proxy
	Namespace string
	Name      string
	// Verb is what was asked ("" means get).
	Verb string
	// Path is set, and the resource fields empty, for a non-resource URL.
	Path string
}

func (e *ForbiddenError) Error() string {
	verb := e.Verb
	if verb == "" {
		verb = "get"
	}
	if e.Path != "" {
		return fmt.Sprintf("%s may not %s %q", e.User, verb, e.Path)
	}
	return fmt.Sprintf("%s may not %s %s %q", e.User, verb, e.Resource, e.Namespace+"/"+e.Name)
}

// Unwrap makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// accessKey is the access cache's key: every field of the decision, its
// kind (connector or path) first in attrs, each prefixed by its length, and
// their count, so that no two decisions share a key. It holds no secret, so
// it needs no hashing.
func accessKey(u User, attrs ...string) string {
	n := len(u.Name) + len(u.UID) + 8*(4+len(attrs)+len(u.Groups))
	for _, a := range attrs {
		n += len(a)
	}
	for _, g := range u.Groups {
		n += len(g)
	}
	b := make([]byte, 0, n)
	b = appendField(b, u.Name)
	b = appendField(b, u.UID)
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, a := range attrs {
		b = appendField(b, a)
	}
	b = binary.AppendUvarint(b, uint64(len(u.Groups)))
	for _, g := range u.Groups {
		b = appendField(b, g)
	}
	if len(u.Extra) > 0 {
		keys := make([]string, 0, len(u.Extra))
		for k := range u.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendField(b, k)
			b = binary.AppendUvarint(b, uint64(len(u.Extra[k])))
			for _, v := range u.Extra[k] {
				b = appendField(b, v)
			}
		}
	}
	return string(b)
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Classify wraps API errors that mean "could not get an answer" (transport
// failures, timeouts, 5xx, 429) with ErrUnavailable.
func Classify(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		if code < 500 && code != 429 && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// classifyReview is Classify for TokenReview and SubjectAccessReview calls,
// which the node makes as itself: a 401 or 403 says the node may not review
// (its RBAC is missing, or still warming up on a restarted API server), not
// that the caller is refused, so it is ErrUnavailable as well; the API server
// did answer, so it does not open the breaker.
func classifyReview(err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return &answeredError{why: "the node may not review", err: err}
	}
	return Classify(err)
}

// ReviewMetrics counts the Reviewer's cache hits, misses and API calls.
type ReviewMetrics struct {
	hits, misses, calls *prometheus.CounterVec
	// lookups are the hit and miss series of the two reviews, resolved
	// once: every proxied request counts two lookups.
	lookups map[string][2]prometheus.Counter
}

// NewReviewMetrics builds the counters and registers them with reg (when not nil).
func NewReviewMetrics(reg prometheus.Registerer) *ReviewMetrics {
	m := &ReviewMetrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_auth_cache_hits_total",
			Help: "Token and access review answers served from the cache.",
		}, []string{"review"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_auth_cache_misses_total",
			Help: "Token and access reviews not found in the cache.",
		}, []string{"review"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_auth_api_calls_total",
			Help: "TokenReview and SubjectAccessReview calls to the API server.",
		}, []string{"review", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.calls)
	}
	m.lookups = map[string][2]prometheus.Counter{}
	for _, review := range []string{"token", "access"} {
		m.lookups[review] = [2]prometheus.Counter{m.misses.WithLabelValues(review), m.hits.WithLabelValues(review)}
	}
	return m
}

func (m *ReviewMetrics) lookup(review string, hit bool) {
	if s, ok := m.lookups[review]; ok {
		if hit {
			s[1].Inc()
		} else {
			s[0].Inc()
		}
		return
	}
	if hit {
		m.hits.WithLabelValues(review).Inc()
		return
	}
	m.misses.WithLabelValues(review).Inc()
}
func (m *ReviewMetrics) call(review string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(review, result).Inc()
}
