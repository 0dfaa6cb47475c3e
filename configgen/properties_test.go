package configgen

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// propertiesRead reads a .properties file as java.util.Properties.load
// reads an InputStream: ISO 8859-1 bytes, natural lines ended by \n, \r or
// \r\n, comment lines starting with # or !, a line continued by an odd run
// of trailing backslashes, the key ended by the first unescaped '=', ':'
// or white space, and the escapes \t \n \r \f \uXXXX and \c for any other
// c. It returns the entries in file order (a repeated key stays repeated).
// A line that starts with '=' or ':' is an error.
func propertiesRead(content []byte) ([][2]string, error) {
	runes := make([]rune, len(content))
	for i, b := range content {
		runes[i] = rune(b) // ISO 8859-1
	}
	var natural [][]rune
	start := 0
	for i := 0; i < len(runes); i++ {
		if runes[i] == '\n' || runes[i] == '\r' {
			natural = append(natural, runes[start:i])
			if runes[i] == '\r' && i+1 < len(runes) && runes[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	if start < len(runes) {
		natural = append(natural, runes[start:])
	}
	isSpace := func(r rune) bool { return r == ' ' || r == '\t' || r == '\f' }
	trimLead := func(l []rune) []rune {
		for len(l) > 0 && isSpace(l[0]) {
			l = l[1:]
		}
		return l
	}
	var out [][2]string
	for i := 0; i < len(natural); i++ {
		line := trimLead(natural[i])
		if len(line) == 0 || line[0] == '#' || line[0] == '!' {
			continue
		}
		logical := append([]rune(nil), line...)
		for endsContinued(logical) {
			logical = logical[:len(logical)-1]
			if i+1 >= len(natural) {
				break
			}
			i++
			logical = append(logical, trimLead(natural[i])...)
		}
		if logical[0] == '=' || logical[0] == ':' {
			// Java reads such a line in a way of its own; no rendered
			// file has one, so the reader refuses it.
			return nil, errKeylessLine
		}
		k := 0
		for k < len(logical) {
			c := logical[k]
			if c == '\\' {
				k += 2
				continue
			}
			if c == '=' || c == ':' || isSpace(c) {
				break
			}
			k++
		}
		k = min(k, len(logical))
		key := logical[:k]
		rest := trimLead(logical[k:])
		if len(rest) > 0 && (rest[0] == '=' || rest[0] == ':') {
			rest = trimLead(rest[1:])
		}
		kk, err := unescapeProperties(key)
		if err != nil {
			return nil, err
		}
		vv, err := unescapeProperties(rest)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{kk, vv})
	}
	return out, nil
}

// errKeylessLine is a line that starts with a separator.
var errKeylessLine = errors.New("a line starts with '=' or ':'")

// endsContinued reports an odd run of backslashes at the end of l.
func endsContinued(l []rune) bool {
	n := 0
	for i := len(l) - 1; i >= 0 && l[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

func unescapeProperties(in []rune) (string, error) {
	var units []uint16
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' || i+1 >= len(in) {
			if c != '\\' {
				units = append(units, utf16.Encode([]rune{c})...)
			}
			continue
		}
		i++
		switch in[i] {
		case 't':
			units = append(units, '\t')
		case 'n':
			units = append(units, '\n')
		case 'r':
			units = append(units, '\r')
		case 'f':
			units = append(units, '\f')
		case 'u':
			if i+4 >= len(in) {
				return "", errors.New("malformed \\uxxxx encoding")
			}
			n, err := strconv.ParseUint(string(in[i+1:i+5]), 16, 16)
			if err != nil {
				return "", errors.New("malformed \\uxxxx encoding")
			}
			units = append(units, uint16(n))
			i += 4
		default:
			units = append(units, utf16.Encode([]rune{in[i]})...)
		}
	}
	return string(utf16.Decode(units)), nil
}

// propertiesStructure is the keys of a .properties file, in file order.
func propertiesStructure(content []byte) ([]string, error) {
	entries, err := propertiesRead(content)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e[0]
	}
	return out, nil
}

// javaPropertiesSource loads each file named on the command line with
// Properties.load(InputStream) and prints its entries, keys and values as
// hex of their UTF-16 code units.
const javaPropertiesSource = `
import java.io.*;
import java.util.*;
public class ReadProperties {
  static String hex(String s) {
    StringBuilder b = new StringBuilder();
    for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c));
    return b.toString();
  }
  public static void main(String[] args) throws Exception {
    for (int i = 0; i < args.length; i++) {
      Properties p = new Properties();
      try (InputStream in = new FileInputStream(args[i])) {
        p.load(in);
        for (String k : new TreeSet<>(p.stringPropertyNames())) System.out.println(i + " " + hex(k) + " " + hex(p.getProperty(k)));
      } catch (IllegalArgumentException e) {
        System.out.println(i + " error");
      }
    }
  }
}
`

// javaRead reads each text with Java's Properties.load; a text Java refuses
// reads as nil.
func javaRead(t *testing.T, texts []string) []map[string]string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		testenv.SkipOrFail(t, "no java (make deps installs maven and its JDK): %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "ReadProperties.java")
	if err := os.WriteFile(src, []byte(javaPropertiesSource), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{src}
	for i, text := range texts {
		f := filepath.Join(dir, strconv.Itoa(i)+".properties")
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	out, err := exec.CommandContext(t.Context(), java, args...).Output() //nolint:gosec // the test's own program and files
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	got := make([]map[string]string, len(texts))
	for i := range got {
		got[i] = map[string]string{}
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		i, err := strconv.Atoi(f[0])
		if err != nil || i >= len(texts) {
			t.Fatalf("java printed %q", sc.Text())
		}
		if len(f) == 2 && f[1] == "error" {
			got[i] = nil
			continue
		}
		for len(f) < 3 {
			f = append(f, "")
		}
		got[i][fromUTF16Hex(t, f[1])] = fromUTF16Hex(t, f[2])
	}
	return got
}

func fromUTF16Hex(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(units))
}

// TestPropertiesValue reads every escaped value back with Java's
// Properties.load, as sonar-scanner reads sonar-project.properties, and
// with the Go reader of the structure tests.
func TestPropertiesValue(t *testing.T) {
	var texts, want []string
	checkEscape(t, propertiesValue, func(s string) bool { return strings.Contains(s, "\xff") },
		func(t *testing.T, s, escaped string) {
			text := "k=" + escaped + "\nnext=1\n"
			if got, err := propertiesRead([]byte(text)); err != nil || len(got) != 2 || got[0] != [2]string{"k", s} {
				t.Errorf("%q: the Go reader read %q, %v from %q", s, got, err, text)
			}
			texts = append(texts, text)
			want = append(want, s)
		})
	for i, got := range javaRead(t, texts) {
		if len(got) != 2 || got["k"] != want[i] || got["next"] != "1" {
			t.Errorf("%q: Java read %q from %q", want[i], got, texts[i])
		}
	}
}

// TestPropertiesReaderIsJavas checks the Go reader against Java's on the
// raw escaping corpus as keys and values.
func TestPropertiesReaderIsJavas(t *testing.T) {
	var texts []string
	for _, s := range escapeCorpus {
		texts = append(texts, "k="+s+"\n"+s+"=v\n")
	}
	for i, got := range javaRead(t, texts) {
		entries, err := propertiesRead([]byte(texts[i]))
		if errors.Is(err, errKeylessLine) {
			continue
		}
		if got == nil {
			if err == nil {
				t.Errorf("%q: Java refuses the text, the Go reader reads %q", texts[i], entries)
			}
			continue
		}
		mine := map[string]string{}
		for _, e := range entries {
			mine[e[0]] = e[1]
		}
		if err != nil || fmt.Sprint(mine) != fmt.Sprint(got) {
			t.Errorf("%q: Java reads %q, the Go reader %q (%v)", texts[i], got, mine, err)
		}
	}
}

// TestSonarScannerPropertiesReadBack renders the sonarqube class with
// addresses that end in every string of the escaping corpus and reads
// sonar-project.properties back as Java does: sonar.host.url is the
// address, or the volume is refused. Without propertiesValue a trailing
// backslash continues the line and a \u that is no escape makes the
// scanner's Properties.load throw.
func TestSonarScannerPropertiesReadBack(t *testing.T) {
	class := catalogClass(t, "sonarqube.yaml")
	for _, v := range escapeCorpus {
		address := "https://sonarqube.example.com/" + v
		c := newConnector("team-a", "sonarqube", class.Name, address)
		in := baseInput(t, mount(c, class))
		in.Configurations = []string{"sonar-scanner"}
		files, err := Render(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%q: refused with %v, want ErrInvalid", v, err)
			}
			continue
		}
		entries, err := propertiesRead(files["sonar-project.properties"])
		if err != nil {
			t.Errorf("%q: sonar-project.properties does not read: %v", v, err)
			continue
		}
		got := map[string]string{}
		for _, e := range entries {
			got[e[0]] = e[1]
		}
		// Connector data reach templates through JSON: bad UTF-8 is U+FFFD there.
		want := strings.ToValidUTF8(strings.TrimSuffix(address, "/"), "\uFFFD")
		if got["sonar.host.url"] != want || len(entries) != 5 {
			t.Errorf("%q: read %q, want sonar.host.url %q and 5 entries", v, got, want)
		}
	}
}
