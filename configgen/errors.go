package configgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. The CSI layer maps them to gRPC codes with errors.Is.
var (
	// ErrUnknownConfiguration: a configuration name that neither a mounted
	// Connector's class nor a built-in generator provides (NotFound).
	ErrUnknownConfiguration = errors.New("unknown configuration")
	// ErrInvalid: a malformed volume attribute, a bad file name from a
	// class, a control character a Connector or configuration.params
	// brings into a file, or a value a template function cannot write
	// (InvalidArgument).
	ErrInvalid = errors.New("invalid input")
	// ErrTemplate: a ConnectorClass template or param default that fails to
	// parse or render (FailedPrecondition).
	ErrTemplate = errors.New("configuration template failed")
)

// UnknownConfigurationError names the configurations that nothing
// provides, when none of the listed ones is found. It matches
// ErrUnknownConfiguration.
type UnknownConfigurationError struct {
	Names []string
}

func (e *UnknownConfigurationError) Error() string {
	const where = "not found in the mounted connectors' classes or the built-in generators"
	if len(e.Names) == 1 {
		return fmt.Sprintf("configuration %q %s", e.Names[0], where)
	}
	quoted := make([]string, len(e.Names))
	for i, n := range e.Names {
		quoted[i] = strconv.Quote(n)
	}
	return fmt.Sprintf("configurations %s %s", strings.Join(quoted, ", "), where)
}

// Is makes errors.Is(err, ErrUnknownConfiguration) true.
func (e *UnknownConfigurationError) Is(target error) bool {
	return target == ErrUnknownConfiguration
}

// InvalidError says which input is wrong and why. It matches ErrInvalid.
type InvalidError struct {
	// Field names the input: a volume attribute such as
	// "configuration.names" or "configuration.params", a class, its
	// configuration and a data key, or a field of a Connector
	// (connector "<namespace>/<name>" spec.address).
	Field string
	// Reason says what is wrong, without the offending secret values.
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// TemplateError is a ConnectorClass configuration that cannot be rendered.
// It matches ErrTemplate and unwraps to the cause, whose text never carries
// the token.
type TemplateError struct {
	// Class is the ConnectorClass name.
	Class string
	// Configuration is the configuration name.
	Configuration string
	// File is the data key, or empty when the fault is not in one file (a
	// param default).
	File string
	// Err is the cause.
	Err error
}

func (e *TemplateError) Error() string {
	where := fmt.Sprintf("connectorclass %q configuration %q", e.Class, e.Configuration)
	if e.File != "" {
		where += fmt.Sprintf(" file %q", e.File)
	}
	return where + ": " + e.Err.Error()
}

// Is makes errors.Is(err, ErrTemplate) true.
func (e *TemplateError) Is(target error) bool { return target == ErrTemplate }

// Unwrap returns the cause.
func (e *TemplateError) Unwrap() error { return e.Err }

// classField names a data key of a class configuration in an InvalidError.
func classField(class, configuration, key string) string {
	return fmt.Sprintf("connectorclass %q configuration %q data key %q", class, configuration, key)
}

// connectorField names a field of a Connector in an *InvalidError:
// connector "<namespace>/<name>" <path>.
func connectorField(c Connector, path string) string {
	return fmt.Sprintf("connector %q %s", c.Object.Key(), path)
}
