package atomicwriter

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is wrapped by the error for a file name Write refuses.
var ErrInvalidName = errors.New("invalid file name")

// ValidateName reports whether name may be written as one file directly
// under the target directory: not empty, not ".", no "/", no "..", no NUL
// and no leading "-".
func ValidateName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case name == ".":
		why = `"." is the directory itself`
	case strings.Contains(name, "/"):
		why = `contains "/"`
	case strings.Contains(name, ".."):
		why = `contains ".."`
	case strings.ContainsRune(name, 0):
		why = "contains NUL"
	case strings.HasPrefix(name, "-"):
		why = `starts with "-"`
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
}
