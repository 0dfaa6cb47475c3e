package connref

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Max is the most Connectors one list may name.
const Max = 64

// Separator separates the items of a list.
const Separator = ","

// Parse reads a connector list in order. Each item is <namespace>/<name>;
// when defaultNamespace is not empty an item may also be a bare <name> in
// that namespace. Spaces around items are ignored. An empty item, an
// invalid namespace (a DNS label) or name (a DNS subdomain), a Connector
// listed twice, or more than Max items is an error that names the item.
func Parse(list, defaultNamespace string) ([]types.NamespacedName, error) {
	items := strings.Split(list, Separator)
	if len(items) > Max {
		return nil, fmt.Errorf("%d items, at most %d allowed", len(items), Max)
	}
	keys := make([]types.NamespacedName, 0, len(items))
	seen := make(map[types.NamespacedName]bool, len(items))
	for i, item := range items {
		k, err := parseItem(strings.TrimSpace(item), i, defaultNamespace)
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, fmt.Errorf("connector %q is listed twice", k.String())
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys, nil
}

func parseItem(item string, i int, defaultNamespace string) (types.NamespacedName, error) {
	if item == "" {
		return types.NamespacedName{}, fmt.Errorf("item %d is empty", i+1)
	}
	if strings.Contains(item, "..") {
		return types.NamespacedName{}, fmt.Errorf("item %q contains \"..\"", item)
	}
	ns, name, qualified := strings.Cut(item, "/")
	switch {
	case qualified && strings.Contains(name, "/"):
		return types.NamespacedName{}, fmt.Errorf("item %q has more than one \"/\": use <namespace>/<name>%s", item, bareForm(defaultNamespace))
	case !qualified && defaultNamespace == "":
		return types.NamespacedName{}, fmt.Errorf("item %q is not <namespace>/<name>", item)
	case !qualified:
		ns, name = defaultNamespace, item
	}
	if msg := CheckNamespace(ns); msg != "" {
		return types.NamespacedName{}, fmt.Errorf("item %q: namespace %s", item, msg)
	}
	if msg := CheckName(name); msg != "" {
		return types.NamespacedName{}, fmt.Errorf("item %q: name %s", item, msg)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

func bareForm(defaultNamespace string) string {
	if defaultNamespace == "" {
		return ""
	}
	return " or <name>"
}

// Format writes keys as a list Parse reads back: <namespace>/<name> items
// in order, without repeats.
func Format(keys []types.NamespacedName) string {
	var b strings.Builder
	seen := make(map[types.NamespacedName]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if b.Len() > 0 {
			b.WriteString(Separator)
		}
		b.WriteString(k.Namespace + "/" + k.Name)
	}
	return b.String()
}

// Valid reports whether k has a valid namespace and name. It runs on every
// proxied request, so it checks by hand what apimachinery's validation
// checks with regular expressions (connref_test.go fuzzes the two against
// each other).
func Valid(k types.NamespacedName) bool {
	return isDNS1123Label(k.Namespace) && isDNS1123Subdomain(k.Name)
}

// isDNS1123Label is validation.IsDNS1123Label without the messages: 1 to
// 63 lower-case letters, digits and '-', starting and ending with a letter
// or digit.
func isDNS1123Label(s string) bool {
	return len(s) <= validation.DNS1123LabelMaxLength && isLabel(s)
}

// isDNS1123Subdomain is validation.IsDNS1123Subdomain without the messages:
// at most 253 characters of labels (as isDNS1123Label, of any length)
// joined by '.'.
func isDNS1123Subdomain(s string) bool {
	if len(s) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	for {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return isLabel(s)
		}
		if !isLabel(s[:i]) {
			return false
		}
		s = s[i+1:]
	}
}

func isLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// CheckNamespace says what is wrong with a Connector's namespace, "" when
// nothing is.
func CheckNamespace(ns string) string {
	if isDNS1123Label(ns) {
		return ""
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "is not a valid namespace name: " + strings.Join(errs, "; ")
	}
	return ""
}

// CheckName says what is wrong with a Connector's name, "" when nothing
// is.
func CheckName(name string) string {
	if isDNS1123Subdomain(name) {
		return ""
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "is not a valid object name: " + strings.Join(errs, "; ")
	}
	return ""
}
