package provider

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestEveryAccTestRunsInParallel keeps the acceptance run short: each
// TestAcc test of this package runs with resource.ParallelTest (or calls
// t.Parallel), so the tests share the one local cloud at once instead of
// one after another (raiseAccParallelism bounds how many). A test that
// cannot share the cloud with others would have to be listed here with
// the reason; none is.
func TestEveryAccTestRunsInParallel(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := 0
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parsing %s: %v", f, err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !isAccTest(fn.Name.Name) || fn.Body == nil {
				continue
			}
			found++
			parallel, serial := false, false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch {
				case x.Name == "resource" && sel.Sel.Name == "ParallelTest", x.Name == "t" && sel.Sel.Name == "Parallel":
					parallel = true
				case x.Name == "resource" && sel.Sel.Name == "Test":
					serial = true
				}
				return true
			})
			if serial || !parallel {
				t.Errorf("%s (%s): an acceptance test runs with resource.ParallelTest, with a name of its own (accName), so the run stays within its time", fn.Name.Name, fset.Position(fn.Pos()))
			}
		}
	}
	if found == 0 {
		t.Fatal("no TestAcc function found: the check looks in the wrong place")
	}
}

// isAccTest reports whether name is an acceptance test's: TestAcc and then
// the resource, capitalised (TestAccCluster_basic; not TestAccessWith...).
func isAccTest(name string) bool {
	rest, ok := strings.CutPrefix(name, "TestAcc")
	return ok && rest != "" && unicode.IsUpper(rune(rest[0]))
}
