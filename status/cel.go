package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Bounds of a response.cel expression. An expression longer or deeper
// than these does not compile; one that costs more or runs longer stops
// with an error.
const (
	// celMaxExpression is the longest expression, in code points.
	celMaxExpression = 4096
	// celMaxDepth bounds the parser's recursion.
	celMaxDepth = 32
	// celCostLimit bounds one evaluation's cost (about one unit per
	// operation, and per ten characters scanned by a string function):
	// enough for a few scans of the largest body.
	celCostLimit = 5_000_000
	// celEvalTimeout bounds one evaluation's time.
	celEvalTimeout = 100 * time.Millisecond
	// celMaxBody is the most of a response body an expression sees: a
	// longer body is cut there in response.bodyString and response.body is
	// null.
	celMaxBody = 1 << 20
	// celMaxShown is the most of an expression a condition message quotes.
	celMaxShown = 120
)

// celPrograms compiles the response.cel expressions of the classes, once
// per class generation, and evaluates them against probe answers.
type celPrograms struct {
	env      *cel.Env
	compiles prometheus.Counter

	mu sync.Mutex
	// progs is keyed by class name and field; an entry of another class
	// UID or generation is compiled again.
	progs map[celKey]*celEntry
}

type celKey struct{ class, field string }

type celEntry struct {
	uid        string
	generation int64
	expr       string
	prog       cel.Program
	err        error
}

// newCELPrograms builds the one CEL environment: a variable response with
// statusCode, headers, bodyString and body, as upstream documents it, the
// standard functions and the string extensions.
func newCELPrograms(compiles prometheus.Counter) (*celPrograms, error) {
	env, err := cel.NewEnv(
		cel.Variable("response", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(celMaxExpression),
		cel.ParserRecursionLimit(celMaxDepth),
	)
	if err != nil {
		return nil, fmt.Errorf("status: CEL environment: %w", err)
	}
	return &celPrograms{env: env, compiles: compiles, progs: map[celKey]*celEntry{}}, nil
}

// program returns the compiled expression of cls at field, compiling it
// when the class is new or changed. The error names the field.
func (p *celPrograms) program(cls *v1alpha1.ConnectorClass, field, expr string) (cel.Program, error) {
	k := celKey{class: cls.Name, field: field}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.progs[k]; e != nil && e.uid == string(cls.UID) && e.generation == cls.Generation && e.expr == expr {
		return e.prog, e.err
	}
	e := &celEntry{uid: string(cls.UID), generation: cls.Generation, expr: expr}
	e.prog, e.err = p.compile(expr)
	if e.err != nil {
		e.err = fmt.Errorf("connectorclass %q %s: %w", cls.Name, field, e.err)
	}
	p.compiles.Inc()
	p.progs[k] = e
	return e.prog, e.err
}

func (p *celPrograms) compile(expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty expression")
	}
	if n := len([]rune(expr)); n > celMaxExpression {
		return nil, fmt.Errorf("expression of %d characters is longer than %d", n, celMaxExpression)
	}
	ast, iss := p.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("does not compile: %s", oneLine(iss.Err().Error()))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("evaluates to %s, not bool", t)
	}
	return p.env.Program(ast,
		cel.CostLimit(celCostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize))
}

// forgetClass drops the programs of a class that is gone.
func (p *celPrograms) forgetClass(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.progs {
		if k.class == name {
			delete(p.progs, k)
		}
	}
}

// evalCEL evaluates prog against a probe's answer: true, false, or an
// error (a non-bool result, a runtime error, the cost limit or the time
// limit).
func evalCEL(ctx context.Context, prog cel.Program, a *answer) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, celEvalTimeout)
	defer cancel()
	out, _, err := prog.ContextEval(ctx, map[string]any{"response": responseValue(a)})
	if err != nil {
		return false, errors.New(oneLine(err.Error()))
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("evaluated to %s, not bool", out.Type().TypeName())
	}
	return b, nil
}

// responseValue is the CEL variable response: statusCode (int), headers
// (names matched case-insensitively, each a list of values), bodyString
// and body (the JSON body parsed, or null when the body is not JSON by
// Content-Type or syntax, or was cut).
func responseValue(a *answer) map[string]any {
	var body any
	if !a.truncated && isJSON(a.header.Get("Content-Type")) {
		d := json.NewDecoder(bytes.NewReader(a.body))
		if d.Decode(&body) != nil || d.More() {
			body = nil
		}
	}
	return map[string]any{
		"statusCode": int64(a.status),
		"headers":    newHeaderMap(a.header),
		"bodyString": string(a.body),
		"body":       body,
	}
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// headerMap is response.headers: a map of lower-case header names whose
// lookups (index, in, has) ignore case, so response.headers['content-type']
// and response.headers['Content-Type'] are the same list.
type headerMap struct{ traits.Mapper }

func newHeaderMap(h http.Header) headerMap {
	m := make(map[string][]string, len(h))
	for k, v := range h {
		l := strings.ToLower(k)
		m[l] = append(m[l], v...)
	}
	return headerMap{types.DefaultTypeAdapter.NativeToValue(m).(traits.Mapper)}
}

func lowerKey(k ref.Val) ref.Val {
	if s, ok := k.(types.String); ok {
		return types.String(strings.ToLower(string(s)))
	}
	return k
}

func (m headerMap) Contains(k ref.Val) ref.Val     { return m.Mapper.Contains(lowerKey(k)) }
func (m headerMap) Get(k ref.Val) ref.Val          { return m.Mapper.Get(lowerKey(k)) }
func (m headerMap) Find(k ref.Val) (ref.Val, bool) { return m.Mapper.Find(lowerKey(k)) }

// shown quotes an expression for a condition message, cut to celMaxShown.
func shown(expr string) string {
	expr = oneLine(expr)
	if r := []rune(expr); len(r) > celMaxShown {
		expr = string(r[:celMaxShown]) + "…"
	}
	return fmt.Sprintf("%q", expr)
}

// oneLine folds whitespace runs, so a multi-line message reads as one.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
