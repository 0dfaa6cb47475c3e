package configgen

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseNames(t *testing.T) {
	tests := []struct {
		attr        string
		include     []string
		exclude     []string
		wantInvalid string // part of the reason
	}{
		{attr: ""},
		{attr: "   "},
		{attr: "gitconfig", include: []string{"gitconfig"}},
		{attr: "gitconfig, registry-config ,!ca.cert", include: []string{"gitconfig", "registry-config"}, exclude: []string{"ca.cert"}},
		{attr: "!.env,!context.token", exclude: []string{".env", "context.token"}},
		{attr: "a,b,a,!x,!x", include: []string{"a", "b"}, exclude: []string{"x"}},
		{attr: "settings_v2.1", include: []string{"settings_v2.1"}},
		{attr: "a,,b", wantInvalid: "item 2 is empty"},
		{attr: "a,", wantInvalid: "item 2 is empty"},
		{attr: ",a", wantInvalid: "item 1 is empty"},
		{attr: "!", wantInvalid: "file name is empty"},
		{attr: "!../x", wantInvalid: `must not start with ".."`},
		{attr: "!..data", wantInvalid: `must not start with ".."`},
		{attr: "!a/b", wantInvalid: `must not contain "/"`},
		{attr: "!-rf", wantInvalid: `must not start with "-"`},
		{attr: "-x", wantInvalid: "must start with a letter or digit"},
		{attr: "git config", wantInvalid: "only letters"},
		{attr: "a/b", wantInvalid: "only letters"},
		{attr: strings.Repeat("a", 254), wantInvalid: "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.attr, func(t *testing.T) {
			include, exclude, err := ParseNames(tt.attr)
			if tt.wantInvalid != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want *InvalidError", err)
				}
				if ie.Field != "configuration.names" || !strings.Contains(ie.Reason, tt.wantInvalid) {
					t.Fatalf("err = %v, want configuration.names: ...%s...", err, tt.wantInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(include, tt.include) || !slices.Equal(exclude, tt.exclude) {
				t.Fatalf("got %q, %q; want %q, %q", include, exclude, tt.include, tt.exclude)
			}
		})
	}
}

func TestFileNameProblem(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{".gitconfig", true},
		{"config.json", true},
		{"settings-security.xml", true},
		{"ca-bundle.crt", true},
		{"a_b", true},
		{"", false},
		{".", false},
		{"..", false},
		{"..data", false},
		{"..2026_01_01", false},
		{"a..b", false},
		{"../etc/passwd", false},
		{"a/b", false},
		{"/abs", false},
		{"nul\x00", false},
		{"-rf", false},
		{"sp ace", false},
		{"new\nline", false},
		{"quo\"te", false},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		if got := fileNameProblem(tt.name) == ""; got != tt.ok {
			t.Errorf("fileNameProblem(%q) ok = %v, want %v (%s)", tt.name, got, tt.ok, fileNameProblem(tt.name))
		}
	}
}

func FuzzParseNames(f *testing.F) {
	for _, seed := range []string{"", "gitconfig", "a, b, !c", "!..data", ",", "!", "a,,b", "!a/b", "\x00", "é,!é"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, attr string) {
		include, exclude, err := ParseNames(attr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			return
		}
		for _, name := range include {
			if p := configurationNameProblem(name); p != "" {
				t.Fatalf("accepted configuration %q: %s", name, p)
			}
		}
		for _, name := range exclude {
			if p := fileNameProblem(name); p != "" {
				t.Fatalf("accepted file %q: %s", name, p)
			}
		}
	})
}
