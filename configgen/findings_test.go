package configgen

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// Regression tests for the three findings of an outside review that
// attacked the real binary through Connector addresses.

// catalogInput is an Input with one Connector of a catalog class at
// address, rendering names.
func catalogInput(t *testing.T, file, address string, names ...string) Input {
	t.Helper()
	class := catalogClass(t, file)
	in := baseInput(t, mount(newConnector("team-a", "tool", class.Name, address), class))
	in.Configurations = names
	return in
}

// gitGet runs the real git with the rendered .gitconfig as the global
// config and returns `git config --get <key>`, "" when unset.
func gitGet(t *testing.T, gitconfig []byte, key string) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		testenv.SkipOrFail(t, "no git: %v", err)
	}
	f := filepath.Join(t.TempDir(), ".gitconfig")
	if err := os.WriteFile(f, gitconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), git, "config", "--get", key)
	cmd.Env = []string{"GIT_CONFIG_GLOBAL=" + f, "GIT_CONFIG_NOSYSTEM=1", "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Dir = t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return "" // unset
	}
	if err != nil {
		t.Fatalf("git config --get %s: %v: %s\n%s", key, err, stderr.Bytes(), gitconfig)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// Finding 1: an address with a line break gave every pod mounting the git
// class's .gitconfig a core.sshCommand. Addresses that hold no control
// character but every character git config treats specially are written
// so git reads back the address and nothing else.
func TestFinding1GitAddressCannotSetSSHCommand(t *testing.T) {
	for _, address := range []string{
		"https://git.example/x\n[core]\n\tsshCommand = touch /tmp/pwned",
		"https://git.example/x\r\n[core]\r\n\tsshCommand = touch /tmp/pwned",
		"https://git.example/x\r[core]\r\tsshCommand = touch /tmp/pwned",
		"https://git.example/x\u2028[core]\u2028sshCommand = touch /tmp/pwned",
		"https://git.example/x%0A[core]%0A%09sshCommand=touch%20/tmp/pwned",
		`https://git.example/x" [core] sshCommand = "touch /tmp/pwned`,
		`https://git.example/x\" ; [core] # sshCommand = touch`,
		`https://git.example/x\`,
	} {
		for _, gen := range []struct{ file, names string }{{"git.yaml", "gitconfig"}, {"github.yaml", GeneratorGitconfig}} {
			t.Run(gen.file+" "+address, func(t *testing.T) {
				files, err := Render(catalogInput(t, gen.file, address, gen.names))
				if err != nil {
					var invalid *InvalidError
					if !errors.As(err, &invalid) || invalid.Field != `connector "team-a/tool" spec.address` {
						t.Fatalf("err = %v, want an ErrInvalid naming spec.address", err)
					}
					return
				}
				gitconfig := files[FileGitconfig]
				if got := gitGet(t, gitconfig, "core.sshCommand"); got != "" {
					t.Fatalf("core.sshCommand = %q from\n%s", got, gitconfig)
				}
				entries, err := gitConfigEntries(t, gitconfig)
				if err != nil {
					t.Fatal(err)
				}
				var keys []string
				for _, e := range entries {
					keys = append(keys, e[0][:strings.Index(e[0], ".")]+e[0][strings.LastIndex(e[0], "."):])
					if strings.HasSuffix(e[0], ".insteadof") && e[1] != strings.TrimSuffix(address, "/")+"/" {
						t.Errorf("insteadOf = %q, want the address", e[1])
					}
				}
				if want := []string{"http.extraheader", "http.followredirects", "url.insteadof"}; !slices.Equal(keys, want) {
					t.Errorf("git reads %q, want %q\n%s", keys, want, gitconfig)
				}
			})
		}
	}
}

// Finding 2: XML in an address added a first mirror at another host,
// with the id of the server entry that holds the pod's token. settings.xml
// keeps exactly one mirror, at the proxy, and the address is text.
func TestFinding2MavenAddressCannotAddAMirror(t *testing.T) {
	for _, address := range []string{
		"https://repo.example/</name><mirrorOf>*</mirrorOf><url>http://elsewhere/</url></mirror><mirror><id>x</id><name>",
		"https://repo.example/]]><mirror><url>http://elsewhere/</url></mirror><![CDATA[",
		"https://repo.example/&lt;/name&gt;&#60;url&#62;",
		"https://repo.example/<!-- --><?x?><!DOCTYPE x>",
	} {
		t.Run(address, func(t *testing.T) {
			in := catalogInput(t, "maven.yaml", address, "settings")
			files := render(t, in)
			var s struct {
				Servers []struct {
					ID       string `xml:"id"`
					Password string `xml:"password"`
				} `xml:"servers>server"`
				Mirrors []struct {
					ID       string `xml:"id"`
					Name     string `xml:"name"`
					MirrorOf string `xml:"mirrorOf"`
					URL      string `xml:"url"`
				} `xml:"mirrors>mirror"`
			}
			if err := xml.Unmarshal(files["settings.xml"], &s); err != nil {
				t.Fatalf("settings.xml does not parse: %v\n%s", err, files["settings.xml"])
			}
			proxy := strings.TrimSuffix(in.Connectors[0].ProxyAddress, "/") + "/"
			if len(s.Mirrors) != 1 || s.Mirrors[0].URL != proxy || s.Mirrors[0].MirrorOf != "*" {
				t.Fatalf("mirrors = %+v, want one mirror of * at %s", s.Mirrors, proxy)
			}
			if want := address + " through the connectors proxy"; s.Mirrors[0].Name != want {
				t.Errorf("mirror name = %q, want %q", s.Mirrors[0].Name, want)
			}
			if len(s.Servers) != 1 || s.Servers[0].ID != s.Mirrors[0].ID || s.Servers[0].Password != testToken {
				t.Errorf("servers = %+v", s.Servers)
			}
			paths, err := xmlStructure(files["settings.xml"])
			benign, _ := xmlStructure(render(t, catalogInput(t, "maven.yaml", "https://repo.example/", "settings"))["settings.xml"])
			if err != nil || !slices.Equal(paths, benign) {
				t.Errorf("settings.xml has another structure: %q, %v", paths, err)
			}
		})
	}
}

// Finding 3: a line break in an address added strict-ssl=false and
// script-shell=<path> to .npmrc (and .yarnrc.yml was refused only because
// urlParse happened to fail). Now the line break is refused, and an
// address with characters npm's reader treats specially is written so
// npm reads back the address and no other key.
func TestFinding3NpmAddressCannotSetKeys(t *testing.T) {
	for _, address := range []string{
		"https://registry.example\nstrict-ssl=false\nscript-shell=/tmp/x",
		"https://registry.example\r\nstrict-ssl=false",
		"https://registry.example\rstrict-ssl=false",
		"https://registry.example\u2028strict-ssl=false",
	} {
		t.Run(fmt.Sprintf("%q", address), func(t *testing.T) {
			for _, names := range []string{"npmrc", "yarnrc"} {
				_, err := Render(catalogInput(t, "npm.yaml", address, names))
				var invalid *InvalidError
				if !errors.As(err, &invalid) || invalid.Field != `connector "team-a/tool" spec.address` {
					t.Fatalf("%s: err = %v, want an ErrInvalid naming spec.address", names, err)
				}
			}
		})
	}
	var texts, addresses []string
	for _, path := range []string{";strict-ssl=false", "#x", "a=b", "${HOME}", `\${HOME}`, `"q"`, "'s'", "[x]"} {
		address := "https://registry.example/" + path
		files := render(t, catalogInput(t, "npm.yaml", address, "npmrc", "yarnrc"))
		npmrc := files[".npmrc"]
		values := npmrcValues(npmrc)
		want := []string{"//registry.example/" + path + "/:_auth", "audit", "fund", "https-proxy", "noproxy", "proxy", "registry", "strict-ssl", "update-notifier"}
		if got := sortedKeys(values); !slices.Equal(got, want) {
			t.Errorf("%q: .npmrc keys %q, want %q\n%s", address, got, want, npmrc)
		}
		if values["registry"] != address+"/" || values["strict-ssl"] != true {
			t.Errorf("%q: registry = %q, strict-ssl = %q", address, values["registry"], values["strict-ssl"])
		}
		texts, addresses = append(texts, string(npmrc)), append(addresses, address)
		var yarnrc map[string]any
		if err := yaml.UnmarshalStrict(files[".yarnrc.yml"], &yarnrc); err != nil || yarnrc["npmRegistryServer"] != address+"/" || yarnrc["enableStrictSsl"] != true || len(yarnrc) != 8 {
			t.Errorf("%q: .yarnrc.yml reads %v, %v\n%s", address, yarnrc, err, files[".yarnrc.yml"])
		}
	}
	// The same files, read by npm's own code.
	for i, entries := range npmRead(t, texts) {
		keys := map[string]any{}
		for _, e := range entries {
			keys[fmt.Sprint(e[1])] = e[2]
		}
		if len(entries) != 9 || keys["registry"] != addresses[i]+"/" {
			t.Errorf("npm reads %q from\n%s", entries, texts[i])
		}
	}
}
