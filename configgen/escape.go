package configgen

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Escaping functions: each writes a string so that the reader of one file
// format reads back the same string and nothing else, or fails when the
// format cannot hold the string faithfully. Class templates call them by
// the names in escapeFuncs; the built-in generators call them directly.
//
// text/template's own html, js and urlquery are no substitute: html
// escapes for HTML text (it leaves line breaks and tabs, which an XML
// attribute folds into spaces, and turns NUL into U+FFFD), js for
// JavaScript string literals, and urlquery for URL query components; none
// of them knows a configuration format.

// valueError is a value a template function cannot use: an escaping
// function that cannot write it faithfully, or urlParse on a value that
// is not a URL. It says why without repeating the value, which may be the
// token or a hostile string. Render reports it as an *InvalidError.
type valueError struct {
	fn     string
	reason string
}

func (e *valueError) Error() string { return e.fn + ": the value " + e.reason }

// escapeFuncs are the escaping functions of the template function map.
func escapeFuncs() map[string]any {
	fns := map[string]func(string) (string, error){
		"gitConfigValue":      gitConfigValue,
		"gitConfigSubsection": gitConfigSubsection,
		"xmlText":             xmlText,
		"xmlAttr":             xmlAttr,
		"iniValue":            iniValue,
		"npmrcValue":          npmrcValue,
		"yamlString":          yamlString,
		"yamlKey":             yamlKey,
		"tomlString":          tomlString,
		"shellQuote":          shellQuote,
		"propertiesValue":     propertiesValue,
	}
	out := make(map[string]any, len(fns))
	for name, fn := range fns {
		out[name] = func(v any) (string, error) {
			s, err := templateString(name, v)
			if err != nil {
				return "", err
			}
			return fn(s)
		}
	}
	return out
}

// templateString is the string an escaping function writes for a template
// value: a string as it is, a number or bool as text/template prints it.
// A missing value (nil) or a map or list is an error of the template, not
// of the value, and so is no *valueError.
func templateString(fn string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, float64, float32, int, int64, int32, uint, uint64, uint32:
		return fmt.Sprint(v), nil
	case nil:
		return "", fmt.Errorf("%s: no value (a missing key?)", fn)
	default:
		return "", fmt.Errorf("%s: a %T is not a string, number or bool", fn, v)
	}
}

// isControl reports the control characters no value from a Connector may
// bring into a rendered file: C0 (tab and line feed too), DEL, C1, and the
// line and paragraph separators U+2028 and U+2029, which some readers take
// for line breaks.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029'
}

// isC0OrDEL reports the ASCII control characters: U+0000 to U+001F and DEL.
func isC0OrDEL(r rune) bool { return r < 0x20 || r == 0x7f }

// refuseControl fails when s holds a character of bad, naming the first
// one and where it is.
func refuseControl(fn, s string, bad func(rune) bool) error {
	for i, r := range s {
		if bad(r) {
			return &valueError{fn: fn, reason: fmt.Sprintf("holds control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// refuseInvalidUTF8 fails when s is not UTF-8: formats whose readers decode
// UTF-8 cannot hold it.
func refuseInvalidUTF8(fn, s string) error {
	if !utf8.ValidString(s) {
		return &valueError{fn: fn, reason: "is not valid UTF-8"}
	}
	return nil
}

// refuseOuterSpace fails when s starts or ends with white space, which
// INI readers strip.
func refuseOuterSpace(fn, s string) error {
	if strings.TrimSpace(s) != s || strings.HasPrefix(s, "\uFEFF") || strings.HasSuffix(s, "\uFEFF") {
		return &valueError{fn: fn, reason: "starts or ends with white space, which the reader strips"}
	}
	return nil
}

// gitConfigValue writes s as a git config value: as it is when git reads
// it so, else in double quotes with '"' and '\' escaped (a value with '#'
// or ';', which start comments, with quotes or backslashes, or with white
// space at either end). Control characters fail: a line break would end
// the value and start a line of config.
func gitConfigValue(s string) (string, error) {
	if err := refuseControl("gitConfigValue", s, isC0OrDEL); err != nil {
		return "", err
	}
	if !strings.ContainsAny(s, "#;\"\\") && strings.TrimSpace(s) == s {
		return s, nil
	}
	return backslashQuote(s), nil
}

// gitConfigSubsection writes s as the quoted subsection name of a git
// config section header, [section "<s>"], with '"' and '\' escaped.
// Control characters fail: git ends the header at a line break and cannot
// hold NUL.
func gitConfigSubsection(s string) (string, error) {
	if err := refuseControl("gitConfigSubsection", s, isC0OrDEL); err != nil {
		return "", err
	}
	return backslashQuote(s), nil
}

// xmlText writes s as XML character data: '&', '<' and '>' as entities
// (so no markup, CDATA end or entity reference can start), CR as &#13; (an
// XML reader turns a raw CR into LF). Characters XML 1.0 cannot hold fail:
// C0 controls other than tab and line feed, U+FFFE, U+FFFF and invalid
// UTF-8.
func xmlText(s string) (string, error) { return xmlEscape("xmlText", s, false) }

// xmlAttr writes s as an XML attribute value for either quote: like
// xmlText, and also '"' and '\” as entities, and tab and line feed as
// character references (an XML reader folds raw ones into spaces).
func xmlAttr(s string) (string, error) { return xmlEscape("xmlAttr", s, true) }

func xmlEscape(fn, s string, attr bool) (string, error) {
	if err := refuseInvalidUTF8(fn, s); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\r':
			b.WriteString("&#13;")
		case attr && r == '"':
			b.WriteString("&quot;")
		case attr && r == '\'':
			b.WriteString("&#39;")
		case attr && r == '\t':
			b.WriteString("&#9;")
		case attr && r == '\n':
			b.WriteString("&#10;")
		case r < 0x20 && r != '\t' && r != '\n', r == 0xFFFE, r == 0xFFFF:
			return "", &valueError{fn: fn, reason: fmt.Sprintf("holds %U at byte %d, which XML cannot hold", r, i)}
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// iniValue writes s as a value of an INI file read by Python's
// configparser (pip.conf, .pypirc): as it is, since configparser has no
// quoting or escapes and, without inline comments, takes the rest of the
// line. Control characters fail (a line break ends the value or continues
// it into the next key's line), and so do white space at either end,
// which configparser strips, and invalid UTF-8, which it decodes.
func iniValue(s string) (string, error) {
	if err := refuseControl("iniValue", s, isC0OrDEL); err != nil {
		return "", err
	}
	if err := refuseOuterSpace("iniValue", s); err != nil {
		return "", err
	}
	if err := refuseInvalidUTF8("iniValue", s); err != nil {
		return "", err
	}
	return s, nil
}

// npmrcValue writes s as a key or value of .npmrc, as npm reads it (the
// ini package, then ${NAME} expansion from the environment): as it is when
// it is not empty and holds none of ;#\"'=$[] nor a line separator, else
// as a JSON string,
// which npm's ini package decodes, with '=' as \u003d (a raw '=' would end
// a key) and a backslash before every ${NAME} so it is not expanded.
// Control characters fail (npm splits lines at CR and LF), and so does
// white space at either end, which npm strips.
func npmrcValue(s string) (string, error) {
	if err := refuseControl("npmrcValue", s, isC0OrDEL); err != nil {
		return "", err
	}
	if err := refuseOuterSpace("npmrcValue", s); err != nil {
		return "", err
	}
	if err := refuseInvalidUTF8("npmrcValue", s); err != nil {
		return "", err
	}
	if s != "" && !strings.ContainsAny(s, ";#\\\"'=$[]\u2028\u2029") {
		return s, nil
	}
	s = escapeNpmEnv(s)
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '=', '\u2028', '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// escapeNpmEnv makes npm's environment expansion give back s: npm
// replaces ${NAME} and ${NAME?} (NAME has none of "${}?") with the
// variable, unless an odd run of backslashes comes before it, of which it
// then drops half and one. So each such reference gets its run of k
// backslashes written as 2k+1.
func escapeNpmEnv(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			run++
			continue
		case c == '$' && isNpmEnvRef(s[i:]):
			b.WriteString(strings.Repeat(`\`, 2*run+1))
		default:
			b.WriteString(strings.Repeat(`\`, run))
		}
		run = 0
		b.WriteByte(c)
	}
	b.WriteString(strings.Repeat(`\`, run))
	return b.String()
}

// isNpmEnvRef reports whether s starts with a reference npm expands:
// "${", one or more characters other than "${}?", an optional '?', "}".
func isNpmEnvRef(s string) bool {
	rest, ok := strings.CutPrefix(s, "${")
	if !ok {
		return false
	}
	n := strings.IndexAny(rest, "${}?")
	if n <= 0 {
		return false
	}
	rest = strings.TrimPrefix(rest[n:], "?")
	return strings.HasPrefix(rest, "}")
}

// yamlString writes s as a double-quoted YAML scalar: '"' and '\'
// escaped, and every character YAML does not allow raw (C0 controls, DEL,
// C1, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF) as an escape. It is always a
// string, whatever it looks like. Invalid UTF-8 fails.
func yamlString(s string) (string, error) {
	if err := refuseInvalidUTF8("yamlString", s); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, `\x%02X`, r)
		case r == '\u2028' || r == '\u2029' || r == '\uFEFF' || r == '\uFFFE' || r == '\uFFFF':
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// yamlKey writes s as a YAML mapping key: plain when it starts with a
// letter, holds only letters, digits and ._/:- with at least one of
// those, and does not end in ':', so that no YAML 1.1 or 1.2 reader takes
// it for anything but that string (a host:port, as gh's hosts.yml has it);
// otherwise as yamlString does.
func yamlKey(s string) (string, error) {
	if plainYAML(s) {
		return s, nil
	}
	return yamlString(s)
}

func plainYAML(s string) bool {
	if s == "" || !isASCIILetter(s[0]) || s[len(s)-1] == ':' || !strings.ContainsAny(s, "._/:-") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && (c < '0' || c > '9') && !strings.ContainsRune("._/:-", rune(c)) {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// tomlString writes s as a TOML basic string: '"' and '\' escaped, control
// characters (C0 and DEL) as \b \t \n \f \r or \uXXXX. Invalid UTF-8
// fails.
func tomlString(s string) (string, error) {
	if err := refuseInvalidUTF8("tomlString", s); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if isC0OrDEL(r) {
				fmt.Fprintf(&b, `\u%04X`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// propertiesValue writes s as a value of a Java .properties file, as
// java.util.Properties.load reads it (sonar-project.properties): a
// backslash before '\\' and a leading space (which the reader would skip),
// \t \n \r \f for those controls, and \uXXXX (UTF-16) for every other
// character outside printable ASCII, so the file reads the same from an
// ISO 8859-1 stream as from a UTF-8 reader. '=', ':', '#' and '!' stay as
// they are: after the key's separator only a line break or a trailing
// backslash could end the value or continue it, and neither is left raw.
// Invalid UTF-8 fails.
func propertiesValue(s string) (string, error) {
	if err := refuseInvalidUTF8("propertiesValue", s); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range s {
		switch {
		case r == '\\' || (r == ' ' && i == 0):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04X`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// shellQuote writes s as one POSIX shell word in single quotes, inside
// which nothing is special but the quote itself, written as '\”. Control
// characters fail: a shell word cannot hold NUL, and .env files are also
// read line by line (dotenv, docker --env-file), where a line break would
// start another variable. So does invalid UTF-8, which dotenv readers
// decode.
func shellQuote(s string) (string, error) {
	if err := refuseControl("shellQuote", s, isC0OrDEL); err != nil {
		return "", err
	}
	if err := refuseInvalidUTF8("shellQuote", s); err != nil {
		return "", err
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// backslashQuote wraps s in double quotes, escaping '"' and '\' with a
// backslash: the quoting of git config values and subsections.
func backslashQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
