package provider

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
)

// TestEveryAccTestRunsInParallel keeps the acceptance run short: each
// TestAcc test of this package begins with accParallel(t), so the tests
// share the one local cloud at once instead of one after another, in the
// order and number accSlots decides. (resource.ParallelTest or t.Parallel
// would bypass it, and either after accParallel would panic.)
// A test that cannot share the cloud with others would have to be listed
// here with the reason; none is.
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
			where := fmt.Sprintf("%s (%s)", fn.Name.Name, fset.Position(fn.Pos()))
			if len(fn.Body.List) == 0 || !callsAt(fn.Body.List[0], "", "accParallel") {
				t.Errorf("%s: an acceptance test begins with accParallel(t), and uses a cluster name of its own (accName)", where)
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok && (isCall(call, "resource", "ParallelTest") || isCall(call, "t", "Parallel")) {
					t.Errorf("%s: %s; accParallel(t) already makes the test parallel", where, fset.Position(call.Pos()))
				}
				return true
			})
		}
	}
	if found == 0 {
		t.Fatal("no TestAcc function found: the check looks in the wrong place")
	}
}

// callsAt reports whether stmt is a call of pkg.name (of name when pkg is "").
func callsAt(stmt ast.Stmt, pkg, name string) bool {
	e, ok := stmt.(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := e.X.(*ast.CallExpr)
	return ok && isCall(call, pkg, name)
}

func isCall(call *ast.CallExpr, pkg, name string) bool {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return pkg == "" && f.Name == name
	case *ast.SelectorExpr:
		x, ok := f.X.(*ast.Ident)
		return ok && x.Name == pkg && f.Sel.Name == name
	}
	return false
}

// isAccTest reports whether name is an acceptance test's: TestAcc and then
// the resource, capitalised (TestAccCluster_basic; not TestAccessWith...).
func isAccTest(name string) bool {
	rest, ok := strings.CutPrefix(name, "TestAcc")
	return ok && rest != "" && unicode.IsUpper(rune(rest[0]))
}

// TestSchedulerAdmitsSlowFirst: with one slot, the test named slow first runs
// first, then the others in the order they were declared, one at a time.
func TestSchedulerAdmitsSlowFirst(t *testing.T) {
	s := newAccScheduler(1, []string{t.Name() + "/group/slow"})
	var mu sync.Mutex
	var order []string
	running, most := 0, 0
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b", "slow", "c"} {
			t.Run(name, func(t *testing.T) {
				s.register(t)
				t.Parallel()
				s.admit(t)
				mu.Lock()
				order = append(order, name)
				running++
				most = max(most, running)
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				mu.Lock()
				running--
				mu.Unlock()
			})
		}
	})
	if got := strings.Join(order, ","); got != "slow,a,b,c" || most != 1 {
		t.Fatalf("ran %s with up to %d at once, want slow,a,b,c one at a time", got, most)
	}
}
