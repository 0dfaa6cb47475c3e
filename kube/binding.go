package kube

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Keys of user.extra a TokenReview returns for a token bound to a pod
// (kubelet's projected tokens, or TokenRequest with a Pod boundObjectRef).
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
)

// Bindings a PodBinding checks; a BindingError names the one that failed.
const (
	BindingPod    = "pod"
	BindingNode   = "node"
	BindingSource = "source-address"
)

// BindingError says which binding of a token failed and why. It wraps
// ErrUnauthenticated; its message holds no token.
type BindingError struct {
	// Binding is BindingPod, BindingNode or BindingSource.
	Binding string
	Reason  string
}

func (e *BindingError) Error() string { return e.Binding + " binding: " + e.Reason }

// Unwrap makes errors.Is(err, ErrUnauthenticated) true.
func (e *BindingError) Unwrap() error { return ErrUnauthenticated }

// PodBindingOptions configure NewPodBinding. Zero values take the defaults.
type PodBindingOptions struct {
	// Client reads the token's pod. Required unless both CheckNode and
	// CheckSource are off.
	Client kubernetes.Interface
	// NodeName is this node. Required when CheckNode is on.
	NodeName string
	// CheckNode refuses a token whose pod is bound to another node.
	CheckNode bool
	// CheckSource refuses a connection whose source address is not one of
	// the pod's IPs. It needs `get` on pods. Turn it off where source
	// addresses are rewritten: hostNetwork pods, SNAT, a central proxy.
	CheckSource bool
	// AllowUnbound accepts tokens bound to no pod. Default false.
	AllowUnbound bool
	// PodTTL is how long a pod read is cached. Default 5m.
	PodTTL time.Duration
	// MissTTL is how long a pod that is gone or has no IP yet is cached.
	// Default 5s.
	MissTTL time.Duration
	// MaxEntries bounds the pod cache. Default 10000.
	MaxEntries int
	// APITimeout bounds one pod read. Default 10s.
	APITimeout time.Duration
	// OutageGrace is how long past PodTTL a pod read keeps serving while
	// the API server is unavailable; a pod found gone is never served
	// past MissTTL. Default DefaultOutageGrace.
	OutageGrace time.Duration
	// Breaker fails uncached pod reads fast while the API server is known
	// unreachable. Default: a Breaker of its own that probes Client.
	Breaker *Breaker
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// PodBinding checks that a reviewed token is used by its own pod: bound to
// a pod, that pod on this node, and the connection from that pod's IP. One
// GET of the pod is made per pod, cached like the reviews (served stale
// through an outage, refreshed in the background), shared by concurrent
// callers.
type PodBinding struct {
	opts    PodBindingOptions
	breaker *Breaker
	pods    *staleCache
}

// NewPodBinding builds a PodBinding.
func NewPodBinding(opts PodBindingOptions) (*PodBinding, error) {
	if opts.CheckNode && opts.NodeName == "" {
		return nil, errors.New("pod binding: NodeName is required to check the node")
	}
	if (opts.CheckNode || opts.CheckSource) && opts.Client == nil {
		return nil, errors.New("pod binding: Client is required")
	}
	if opts.PodTTL <= 0 {
		opts.PodTTL = 5 * time.Minute
	}
	if opts.MissTTL <= 0 {
		opts.MissTTL = 5 * time.Second
	}
	if opts.OutageGrace <= 0 {
		opts.OutageGrace = DefaultOutageGrace
	}
	setCacheDefaults(&opts.MaxEntries, &opts.APITimeout, &opts.Now)
	b := &PodBinding{opts: opts}
	if opts.Client == nil {
		return b, nil // no check reads pods
	}
	if opts.Breaker == nil {
		opts.Breaker = defaultBreaker(opts.Client, opts.Now)
	}
	b.opts, b.breaker = opts, opts.Breaker
	b.pods = newStaleCache("pod", opts.MaxEntries, opts.OutageGrace, opts.APITimeout, opts.Breaker, opts.Now)
	return b, nil
}

// podFacts is what a pod read tells.
type podFacts struct {
	node string
	ips  []netip.Addr
	// gone is the reason the pod cannot be the token's: deleted, or
	// another pod of the same name.
	gone string
}

// Check checks user's pod binding for a connection from source. Errors
// wrap ErrUnauthenticated (a *BindingError) or ErrUnavailable.
func (b *PodBinding) Check(ctx context.Context, user User, source netip.Addr) error {
	name, uid := first(user.Extra[ExtraPodName]), first(user.Extra[ExtraPodUID])
	if name == "" {
		if b.opts.AllowUnbound {
			return nil
		}
		return &BindingError{Binding: BindingPod, Reason: "the token is bound to no pod"}
	}
	ns, ok := serviceAccountNamespace(user.Name)
	if !ok {
		return &BindingError{Binding: BindingPod, Reason: "the token's user is not a ServiceAccount"}
	}
	pod := ns + "/" + name
	node := first(user.Extra[ExtraNodeName])
	var facts podFacts
	if b.opts.CheckSource || (b.opts.CheckNode && node == "") {
		var err error
		if facts, err = b.pod(ctx, ns, name, uid); err != nil {
			return err
		}
		if facts.gone != "" {
			return &BindingError{Binding: BindingPod, Reason: fmt.Sprintf("pod %s %s", pod, facts.gone)}
		}
		if node == "" {
			node = facts.node
		}
	}
	if b.opts.CheckNode && node != b.opts.NodeName {
		if node == "" {
			return &BindingError{Binding: BindingNode, Reason: fmt.Sprintf("pod %s is bound to no node", pod)}
		}
		return &BindingError{Binding: BindingNode, Reason: fmt.Sprintf("pod %s runs on node %s, not on this node", pod, node)}
	}
	if b.opts.CheckSource {
		src := source.Unmap()
		for _, ip := range facts.ips {
			if ip == src {
				return nil
			}
		}
		return &BindingError{Binding: BindingSource,
			Reason: fmt.Sprintf("the connection comes from %s, not from an IP of pod %s", src, pod)}
	}
	return nil
}

// ForgetPod drops what the binding cached about pod, which was deleted.
func (b *PodBinding) ForgetPod(pod PodRef) {
	if b.pods != nil {
		b.pods.forget(podKey(pod.Namespace, pod.Name, pod.UID))
	}
}

func podKey(ns, name, uid string) string { return ns + "/" + name + "/" + uid }

// pod reads the pod (cached), checking its UID against the token's.
func (b *PodBinding) pod(ctx context.Context, ns, name, uid string) (podFacts, error) {
	v, _, err := b.pods.get(ctx, podKey(ns, name, uid), func(ctx context.Context) (answer, error) {
		p, err := b.opts.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			err = b.breaker.classifyRead(err)
			if apierrors.IsNotFound(err) && !errors.Is(err, ErrUnavailable) {
				return answer{val: podFacts{gone: "no longer exists"}, ttl: b.opts.MissTTL}, nil
			}
			return answer{}, fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
		}
		f := podFacts{node: p.Spec.NodeName}
		if uid != "" && string(p.UID) != uid {
			f.gone = "is another pod than the token's"
		}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				f.ips = append(f.ips, a.Unmap())
			}
		}
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && len(f.ips) == 0 {
			f.ips = append(f.ips, a.Unmap())
		}
		if len(f.ips) == 0 || f.gone != "" {
			// An IP comes once the sandbox runs; another pod is never
			// served past its TTL.
			return answer{val: f, ttl: b.opts.MissTTL}, nil
		}
		return answer{val: f, ttl: b.opts.PodTTL, keep: true}, nil
	})
	if err != nil {
		return podFacts{}, err
	}
	return v.(podFacts), nil
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// serviceAccountNamespace reads <ns> from system:serviceaccount:<ns>:<name>.
func serviceAccountNamespace(user string) (string, bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", false
	}
	ns, _, ok := strings.Cut(rest, ":")
	return ns, ok && ns != ""
}
