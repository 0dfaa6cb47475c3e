package kube

import (
	"encoding/base64"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenClaims(t *testing.T) {
	jwt := func(payload string) string {
		return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	c, ok := TokenClaims(jwt(`{"iat":1000,"exp":4600,"sub":"x"}`))
	if !ok || c.Lifetime() != time.Hour || !c.Expiry.Equal(time.Unix(4600, 0)) {
		t.Errorf("claims %+v %v", c, ok)
	}
	if c, ok := TokenClaims(jwt(`{"sub":"x"}`)); !ok || !c.Expiry.IsZero() || c.Lifetime() != 0 {
		t.Errorf("no time claims: %+v %v", c, ok)
	}
	if c, _ := TokenClaims(jwt(`{"iat":5000,"exp":4600}`)); c.Lifetime() != 0 {
		t.Errorf("expiry before issue: lifetime %v", c.Lifetime())
	}
	for _, bad := range []string{"", "a.b", "a.!!.c", jwt(`[1]`), jwt(`{"exp":"soon"}`), "a.b.c.d"} {
		if _, ok := TokenClaims(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

// Every reader of token claims uses TokenClaims: outside claims.go and
// the test API server's token re-signing (which rewrites the claims), no
// non-test code of the module decodes a base64url JWT part itself.
func TestOneClaimsDecoder(t *testing.T) {
	allowed := map[string]bool{
		"kube/claims.go":           true,
		"test/apiserver/tokens.go": true,
	}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "bin" || (strings.HasPrefix(name, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if allowed[rel] {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || fn.Sel.Name != "DecodeString" {
				return true
			}
			if enc, ok := fn.X.(*ast.SelectorExpr); ok && enc.Sel.Name == "RawURLEncoding" {
				t.Errorf("%s decodes base64url (a JWT part) itself; read token claims with kube.TokenClaims", rel)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
