package policy

import (
	"errors"
	"fmt"
)

// Hooks, as metric labels and in messages.
const (
	HookGenerator = "generator"
	HookExtractor = "extractor"
)

// Reasons an evaluation fails, as metric labels.
const (
	reasonError    = "error"
	reasonTimeout  = "timeout"
	reasonBudget   = "budget"
	reasonShape    = "shape"
	reasonCompile  = "compile"
	reasonOK       = "ok"
	reasonUndefine = "undefined"
)

// ErrPolicy is wrapped by every error of this package.
var ErrPolicy = errors.New("policy failed")

// Error is a policy that did not compile or whose evaluation failed. Its
// text names the class and the rule and says why, and never holds any part
// of the input or the output, which carry credentials.
type Error struct {
	// Class is the ConnectorClass name.
	Class string
	// Rule is the field that holds the policy, such as
	// spec.auth.types[token].generator.rego.
	Rule string
	// Reason is a metric label: compile, error, timeout, budget, shape or
	// undefined.
	Reason string
	// Detail says what went wrong; it holds no input or output data.
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("connectorclass %q: %s: %s", e.Class, e.Rule, e.Detail)
}

// Unwrap makes errors.Is(err, ErrPolicy) true.
func (e *Error) Unwrap() error { return ErrPolicy }

// GeneratorRule is the field of an auth type's generator.
func GeneratorRule(authName string) string {
	return fmt.Sprintf("spec.auth.types[%s].generator.rego", authName)
}

// ExtractorRule is the field of a class's token extractor.
const ExtractorRule = "spec.proxy.authExtractor.rego"
