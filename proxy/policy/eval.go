package policy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	opametrics "github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// budget is a query tracer that counts evaluation steps and cancels the
// query past its limit. One evaluation runs on one goroutine.
type budget struct {
	left     int
	cancel   topdown.Cancel
	exceeded bool
}

func (b *budget) Enabled() bool { return true }

func (b *budget) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (b *budget) TraceEvent(topdown.Event) {
	b.left--
	if b.left < 0 && !b.exceeded {
		b.exceeded = true
		b.cancel.Cancel()
	}
}

// deadline is the query's cancel flag, which also remembers that the
// deadline set it.
type deadline struct {
	flag    topdown.Cancel
	expired atomic.Bool
}

func (d *deadline) Cancel()         { d.flag.Cancel() }
func (d *deadline) Cancelled() bool { return d.flag.Cancelled() }

func (d *deadline) expire() {
	d.expired.Store(true)
	d.flag.Cancel()
}

// run evaluates a prepared hook with input under the deadline and the
// step budget. It returns the value of auth (nil when auth is undefined)
// and the result: reasonOK, reasonUndefine or a failure with its detail,
// which holds no input data. The caller checks the shape and then calls
// outcome once.
func (e *Engine) run(ctx context.Context, p *prepared, input ast.Value) (any, string, string) {
	start := time.Now()
	v, reason, detail := e.eval(ctx, p, input)
	e.metrics.duration.WithLabelValues(p.hook).Observe(time.Since(start).Seconds())
	return v, reason, detail
}

// outcome counts an evaluation and turns a failure into an *Error.
func (e *Engine) outcome(p *prepared, reason, detail string) error {
	e.metrics.evaluations.WithLabelValues(p.hook, reason).Inc()
	if reason == reasonOK || reason == reasonUndefine {
		return nil
	}
	e.metrics.errors.WithLabelValues(p.class, p.hook, reason).Inc()
	return &Error{Class: p.class, Rule: p.rule, Reason: reason, Detail: detail}
}

func (e *Engine) eval(ctx context.Context, p *prepared, input ast.Value) (any, string, string) {
	// One timer cancels the query at the deadline; the caller's own
	// cancellation is not watched, since the deadline is short.
	c := &deadline{flag: topdown.NewCancel()}
	timer := time.AfterFunc(e.opts.Timeout, c.expire)
	defer timer.Stop()
	b := &budget{left: e.opts.MaxSteps, cancel: c}
	opts := []rego.EvalOption{
		rego.EvalParsedInput(input),
		rego.EvalExternalCancel(c),
		// OPA would collect timers of its own for each evaluation.
		rego.EvalMetrics(opametrics.NoOp()),
	}
	if p.iterates {
		opts = append(opts, rego.EvalQueryTracer(b))
	}
	rs, err := p.pq.Eval(ctx, opts...)
	switch {
	case b.exceeded:
		return nil, reasonBudget, fmt.Sprintf("evaluation stopped after %d steps", e.opts.MaxSteps)
	case c.expired.Load():
		return nil, reasonTimeout, fmt.Sprintf("evaluation took longer than %s", e.opts.Timeout)
	case err != nil:
		return nil, reasonError, evalDetail(err)
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		return nil, reasonUndefine, ""
	case len(rs) > 1:
		return nil, reasonShape, "rule auth has more than one value"
	}
	return rs[0].Expressions[0].Value, reasonOK, ""
}

// evalDetail describes an evaluation error by its OPA code and location
// only: OPA's messages can quote values, and values hold credentials.
func evalDetail(err error) string {
	var te *topdown.Error
	if errors.As(err, &te) {
		if te.Location != nil {
			return fmt.Sprintf("evaluation failed: %s at line %d", te.Code, te.Location.Row)
		}
		return "evaluation failed: " + te.Code
	}
	return "evaluation failed"
}
