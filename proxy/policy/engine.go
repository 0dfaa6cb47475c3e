package policy

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Timeout bounds one evaluation. Default 250ms.
	Timeout time.Duration
	// MaxSteps bounds the evaluation steps (OPA trace events) of one
	// evaluation, so a policy that loops over a large input stops long
	// before its deadline. Default 100,000.
	MaxSteps int
	// MaxOutputBytes bounds the keys and values a rule yields, added up.
	// Default 16 KiB.
	MaxOutputBytes int
	// MaxPolicyBytes bounds a policy's source. Default 64 KiB.
	MaxPolicyBytes int
	// CacheSize bounds the compiled classes kept (one entry per class
	// generation). Default 512.
	CacheSize int
	// Log receives one line for each class generation whose policy does
	// not compile. Default: discarded.
	Log logr.Logger
	// Registerer registers the policy metrics. Default: not registered.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = 100_000
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = 16 << 10
	}
	if o.MaxPolicyBytes <= 0 {
		o.MaxPolicyBytes = 64 << 10
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 512
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
}

// Engine compiles and evaluates class policies. It is safe for concurrent
// use.
type Engine struct {
	opts    Options
	caps    *ast.Capabilities
	unsafe  map[string]struct{}
	metrics *metrics

	mu      sync.Mutex
	order   *list.List // of *entry, front = most recent
	entries map[classKey]*list.Element
}

// classKey names one generation of a class.
type classKey struct {
	name       string
	uid        types.UID
	generation int64
}

type entry struct {
	key   classKey
	once  sync.Once
	class *Class
}

// New builds an Engine.
func New(opts Options) *Engine {
	opts.setDefaults()
	caps, unsafe := capabilities()
	return &Engine{
		opts: opts, caps: caps, unsafe: unsafe, metrics: newMetrics(opts.Registerer),
		order: list.New(), entries: map[classKey]*list.Element{},
	}
}

// Class returns the compiled policies of a class generation, compiling
// them on first use. Concurrent first uses compile once. A class whose
// policies do not compile is reported then: one log line per broken rule
// and the connectors_policy_invalid_rules gauge.
func (e *Engine) Class(cc *v1alpha1.ConnectorClass) *Class {
	k := classKey{name: cc.Name, uid: cc.UID, generation: cc.Generation}
	e.mu.Lock()
	el, ok := e.entries[k]
	if ok {
		e.order.MoveToFront(el)
	} else {
		el = e.order.PushFront(&entry{key: k})
		e.entries[k] = el
		for e.order.Len() > e.opts.CacheSize {
			old := e.order.Back()
			e.order.Remove(old)
			delete(e.entries, old.Value.(*entry).key)
		}
	}
	en := el.Value.(*entry)
	e.mu.Unlock()
	en.once.Do(func() {
		en.class = e.compileClass(cc)
		e.report(en.class)
	})
	return en.class
}

// Check compiles a class (when this generation is not compiled yet) and
// returns its compile errors. Call it when a class is added or changes,
// so a broken policy is reported before a request needs it.
func (e *Engine) Check(cc *v1alpha1.ConnectorClass) []*Error {
	return e.Class(cc).Errors()
}

// Forget drops the report of a deleted class.
func (e *Engine) Forget(name string) {
	e.metrics.invalid.DeleteLabelValues(name)
}

func (e *Engine) compileClass(cc *v1alpha1.ConnectorClass) *Class {
	c := &Class{name: cc.Name, generators: map[string]*Generator{}, errs: map[string]*Error{}}
	ctx := context.Background()
	for _, t := range cc.Spec.Auth.Types {
		if t.Generator == nil || t.Generator.Rego == "" {
			continue
		}
		rule := GeneratorRule(t.Name)
		p, err := e.compile(ctx, cc.Name, rule, HookGenerator, t.Generator.Rego)
		if err != nil {
			c.errs[rule] = asError(err, cc.Name, rule)
			continue
		}
		c.generators[t.Name] = &Generator{e: e, p: p}
	}
	if px := cc.Spec.Proxy; px != nil && px.AuthExtractor != nil && px.AuthExtractor.Rego != "" {
		p, err := e.compile(ctx, cc.Name, ExtractorRule, HookExtractor, px.AuthExtractor.Rego)
		if err != nil {
			c.errs[ExtractorRule] = asError(err, cc.Name, ExtractorRule)
		} else {
			c.extractor = &Extractor{e: e, p: p}
		}
	}
	return c
}

func asError(err error, class, rule string) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Class: class, Rule: rule, Reason: reasonCompile, Detail: "does not compile"}
}

func (e *Engine) report(c *Class) {
	if len(c.errs) == 0 {
		e.metrics.invalid.DeleteLabelValues(c.name)
		return
	}
	for _, err := range c.Errors() {
		e.opts.Log.Error(err, "connectorclass policy does not compile; its connectors fail until it is fixed",
			"connectorclass", c.name, "rule", err.Rule)
		e.metrics.compileErrors.WithLabelValues(c.name).Inc()
	}
	e.metrics.invalid.WithLabelValues(c.name).Set(float64(len(c.errs)))
}
