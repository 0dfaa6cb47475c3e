package configgen

import (
	"fmt"
	"strings"
)

const (
	namesField  = "configuration.names"
	paramsField = "configuration.params"

	// maxNameLen bounds a configuration name (a DNS subdomain's length).
	maxNameLen = 253
	// maxFileNameLen is NAME_MAX on Linux.
	maxFileNameLen = 255
)

// ParseNames splits a configuration.names attribute such as
// "gitconfig, registry-config, !ca.cert" into the configuration names to
// include and the final file names to exclude (the "!name" items, without
// the "!"), both in the order given, without repeats. Items are separated by
// commas and trimmed of spaces; an empty or all-space attribute means no
// configuration. An empty item, a bad configuration name or a bad file name
// is an *InvalidError for configuration.names.
func ParseNames(attr string) (include, exclude []string, err error) {
	if strings.TrimSpace(attr) == "" {
		return nil, nil, nil
	}
	seen := make(map[string]bool)
	for i, item := range strings.Split(attr, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, nil, &InvalidError{Field: namesField, Reason: fmt.Sprintf("item %d is empty", i+1)}
		}
		if file, ok := strings.CutPrefix(item, "!"); ok {
			if reason := fileNameProblem(file); reason != "" {
				return nil, nil, &InvalidError{Field: namesField, Reason: fmt.Sprintf("excluded file %q: %s", file, reason)}
			}
			if !seen[item] {
				exclude = append(exclude, file)
			}
		} else {
			if reason := configurationNameProblem(item); reason != "" {
				return nil, nil, &InvalidError{Field: namesField, Reason: fmt.Sprintf("configuration %q: %s", item, reason)}
			}
			if !seen[item] {
				include = append(include, item)
			}
		}
		seen[item] = true
	}
	return include, exclude, nil
}

// configurationNameProblem says what is wrong with a configuration name, or
// returns "" for a good one: 1 to 253 letters, digits, '-', '_' or '.',
// starting with a letter or digit.
func configurationNameProblem(name string) string {
	switch {
	case name == "":
		return "name is empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("name is longer than %d characters", maxNameLen)
	case !isAlnum(name[0]):
		return "name must start with a letter or digit"
	}
	for i := 0; i < len(name); i++ {
		if !isKeyChar(name[i]) {
			return "name may hold only letters, digits, '-', '_' and '.'"
		}
	}
	return ""
}

// fileNameProblem says what is wrong with a file name of the volume, or
// returns "" for a good one. A good name is what Kubernetes accepts as a
// ConfigMap key (letters, digits, '-', '_', '.'), at most 255 bytes, and
// additionally is not "." or "..", holds no "..", and starts with neither
// '-' (read as an option by tools) nor ".." (reserved for the atomic
// writer's "..data" and timestamped directories). A '/' or NUL fails the
// character rule, so a name never leaves the volume directory.
func fileNameProblem(name string) string {
	switch {
	case name == "":
		return "file name is empty"
	case name == "." || name == "..":
		return fmt.Sprintf("file name must not be %q", name)
	case strings.HasPrefix(name, ".."):
		return `file name must not start with ".." (reserved for the volume's own entries)`
	case strings.Contains(name, ".."):
		return `file name must not contain ".."`
	case name[0] == '-':
		return `file name must not start with "-"`
	case len(name) > maxFileNameLen:
		return fmt.Sprintf("file name is longer than %d bytes", maxFileNameLen)
	case strings.IndexByte(name, '/') >= 0:
		return `file name must not contain "/"`
	case strings.IndexByte(name, 0) >= 0:
		return "file name must not contain NUL"
	}
	for i := 0; i < len(name); i++ {
		if !isKeyChar(name[i]) {
			return "file name may hold only letters, digits, '-', '_' and '.'"
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isKeyChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '_' || c == '.'
}
