package testcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// endsGoroutine are the testing methods that end the calling goroutine
// with runtime.Goexit. The testing package allows them only on the
// goroutine that runs the test or benchmark function: elsewhere the test
// goes on as if nothing happened, or hangs, or reports the wrong failure.
var endsGoroutine = []string{"Fatal", "Fatalf", "FailNow", "Skip", "Skipf", "SkipNow"}

// elsewhereCalls run a function literal given to them on another
// goroutine: sync.WaitGroup.Go, errgroup's Go, b.RunParallel,
// time.AfterFunc, and http.HandlerFunc (a server's goroutine).
var elsewhereCalls = []string{"Go", "RunParallel", "AfterFunc", "HandlerFunc"}

// exempt lists top-level functions, by module-relative file, allowed to
// hold an occurrence. None is.
var exempt = map[string][]string{}

// TestNoFatalOffTestGoroutine reads every Go file of the module and fails
// for each function literal that runs on a goroutine of its own (a go
// statement, wg.Go, RunParallel, AfterFunc, an HTTP handler) and calls
// t.Fatal and the like, directly or through a helper of its package that
// does. Literals with a *testing.T, B or F parameter of their own (t.Run,
// synctest.Test, f.Fuzz) run the test they are given and are not checked.
func TestNoFatalOffTestGoroutine(t *testing.T) {
	root := filepath.Join("..", "..")
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, files := range dirs {
		found = append(found, checkPackage(t, root, files)...)
	}
	if len(found) == 0 && len(dirs) < 5 {
		t.Fatalf("read only %d directories from %s: not the module", len(dirs), root)
	}
	slices.Sort(found)
	for _, f := range found {
		t.Errorf("%s", f)
	}
}

// checkPackage returns the occurrences in one directory's test files.
func checkPackage(t *testing.T, root string, paths []string) []string {
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg := newPkgInfo(files)
	var found []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, fset.Position(f.Pos()).Filename)
		rel = filepath.ToSlash(rel)
		if !strings.HasSuffix(rel, "_test.go") {
			continue
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || slices.Contains(exempt[rel], fd.Name.Name) {
				continue
			}
			for _, lit := range elsewhere(fd.Body) {
				if pos, ok := pkg.endsHere(fd.Name.Name, lit.Body); ok {
					found = append(found, fmt.Sprintf("%s:%d: may end a goroutine that is not the test's (the function literal of line %d)",
						rel, fset.Position(pos).Line, fset.Position(lit.Pos()).Line))
				}
			}
		}
	}
	return found
}

// pkgInfo is what one package's files say about its testing values and
// helpers. Names are not resolved to objects (no type checking): the
// rules below keep collisions rare, and a collision errs towards
// reporting.
type pkgInfo struct {
	// testNames are the names declared anywhere in the package with a
	// testing type (*testing.T, *testing.B, testing.TB), as parameters or
	// struct fields: t, b, tb...
	testNames map[string]bool
	// helpers are the functions (name), methods (".name") and closures
	// ("outer/name", by the top-level function they are assigned in)
	// that may end the calling goroutine; the value is the index of their
	// testing parameter, or -1 for a method that uses a testing field of
	// its receiver and a closure, which capture theirs.
	helpers map[string]int
}

type fnBody struct {
	outer, key string
	tArg       int
	body       *ast.BlockStmt
}

func newPkgInfo(files []*ast.File) *pkgInfo {
	p := &pkgInfo{testNames: map[string]bool{}, helpers: map[string]int{}}
	var fns []fnBody
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if fl, ok := n.(*ast.FieldList); ok {
				for _, fld := range fl.List {
					if isTestingType(fld.Type) {
						for _, nm := range fld.Names {
							p.testNames[nm.Name] = true
						}
					}
				}
			}
			return true
		})
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			key, tArg := fd.Name.Name, testingParam(fd.Type)
			if fd.Recv != nil {
				key = "." + key
			}
			if tArg >= 0 || fd.Recv != nil {
				fns = append(fns, fnBody{fd.Name.Name, key, tArg, fd.Body})
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
					id, ok1 := as.Lhs[0].(*ast.Ident)
					lit, ok2 := as.Rhs[0].(*ast.FuncLit)
					if ok1 && ok2 && !ownsTest(lit) {
						fns = append(fns, fnBody{fd.Name.Name, fd.Name.Name + "/" + id.Name, -1, lit.Body})
					}
				}
				return true
			})
		}
	}
	for changed := true; changed; {
		changed = false
		for _, f := range fns {
			if _, known := p.helpers[f.key]; !known {
				if _, ok := p.endsHere(f.outer, f.body); ok {
					p.helpers[f.key], changed = f.tArg, true
				}
			}
		}
	}
	return p
}

// endsHere reports the first call in body, which is in the top-level
// function outer, that may end the calling goroutine: a testing method of
// endsGoroutine, or a call of a helper that passes it a testing value.
// Function literals with a testing parameter of their own are skipped.
func (p *pkgInfo) endsHere(outer string, body *ast.BlockStmt) (token.Pos, bool) {
	var pos token.Pos
	ast.Inspect(body, func(n ast.Node) bool {
		if pos.IsValid() {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return !ownsTest(n)
		case *ast.CallExpr:
			if p.ends(outer, n) {
				pos = n.Pos()
			}
		}
		return true
	})
	return pos, pos.IsValid()
}

func (p *pkgInfo) ends(outer string, call *ast.CallExpr) bool {
	passes := func(tArg int) bool {
		if tArg < 0 {
			return true
		}
		if tArg >= len(call.Args) {
			return false
		}
		id, ok := call.Args[tArg].(*ast.Ident)
		return ok && p.testNames[id.Name]
	}
	switch fun := call.Fun.(type) {
	case *ast.SelectorExpr:
		if slices.Contains(endsGoroutine, fun.Sel.Name) && p.isTestValue(fun.X) {
			return true
		}
		tArg, ok := p.helpers["."+fun.Sel.Name]
		return ok && passes(tArg)
	case *ast.Ident:
		if _, ok := p.helpers[outer+"/"+fun.Name]; ok {
			return true
		}
		tArg, ok := p.helpers[fun.Name]
		return ok && passes(tArg)
	}
	return false
}

// isTestValue reports whether e names a testing value: t, or r.t.
func (p *pkgInfo) isTestValue(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return p.testNames[e.Name]
	case *ast.SelectorExpr:
		return p.testNames[e.Sel.Name]
	}
	return false
}

// testingParam returns the index of ft's testing parameter, or -1.
func testingParam(ft *ast.FuncType) int {
	i := 0
	for _, fld := range ft.Params.List {
		n := max(1, len(fld.Names))
		if isTestingType(fld.Type) {
			return i
		}
		i += n
	}
	return -1
}

// isTestingType reports whether e is *testing.T, *testing.B or testing.TB.
func isTestingType(e ast.Expr) bool {
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "testing" && slices.Contains([]string{"T", "B", "TB"}, sel.Sel.Name)
}

// elsewhere returns the function literals in body that run on a goroutine
// other than the one running body.
func elsewhere(body *ast.BlockStmt) []*ast.FuncLit {
	var lits []*ast.FuncLit
	add := func(e ast.Expr) {
		if lit, ok := e.(*ast.FuncLit); ok && !ownsTest(lit) {
			lits = append(lits, lit)
		}
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			add(n.Call.Fun)
			for _, a := range n.Call.Args {
				add(a)
			}
		case *ast.CallExpr:
			name := ""
			switch fun := n.Fun.(type) {
			case *ast.SelectorExpr:
				name = fun.Sel.Name
			case *ast.Ident:
				name = fun.Name
			}
			if slices.Contains(elsewhereCalls, name) {
				for _, a := range n.Args {
					add(a)
				}
			}
		case *ast.FuncLit:
			if isHandler(n) {
				add(n)
			}
		}
		return true
	})
	return slices.CompactFunc(lits, func(a, b *ast.FuncLit) bool { return a == b })
}

// ownsTest reports whether lit takes a *testing.T, B or F of its own.
func ownsTest(lit *ast.FuncLit) bool {
	for _, p := range lit.Type.Params.List {
		if star, ok := p.Type.(*ast.StarExpr); ok {
			if sel, ok := star.X.(*ast.SelectorExpr); ok && slices.Contains([]string{"T", "B", "F"}, sel.Sel.Name) {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "testing" {
					return true
				}
			}
		}
	}
	return false
}

// isHandler reports whether lit is an HTTP handler: its first parameter is
// an http.ResponseWriter.
func isHandler(lit *ast.FuncLit) bool {
	ps := lit.Type.Params.List
	if len(ps) == 0 {
		return false
	}
	sel, ok := ps[0].Type.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "ResponseWriter"
}

// TestNoFatalOffTestGoroutineFinds: the check reports the forms it knows
// and passes the valid ones.
func TestNoFatalOffTestGoroutineFinds(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import (
	"net/http"
	"sync"
	"testing"
)

func must(t *testing.T, err error) {
	if err != nil {
		t.Fatal(err)
	}
}

func TestBad(t *testing.T) {
	var wg sync.WaitGroup
	go func() { t.Fatal("go statement") }()
	wg.Go(func() { must(t, nil) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.FailNow() })
	_ = h
	get := func() { t.Fatalf("closure") }
	go func() { get() }()
}

func BenchmarkBad(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) { b.Fatal("parallel") })
}

func TestGood(t *testing.T) {
	var wg sync.WaitGroup
	wg.Go(func() { t.Error("error is fine") })
	t.Run("sub", func(t *testing.T) { t.Fatal("own test") })
	must(t, nil)
	go func() { defer wg.Done() }()
}
`
	path := filepath.Join(dir, "x_test.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := checkPackage(t, dir, []string{path})
	var lines []string
	for _, g := range got {
		lines = append(lines, strings.SplitN(g, ":", 3)[1])
	}
	if want := []string{"17", "18", "19", "22", "26"}; !slices.Equal(lines, want) {
		t.Errorf("reported lines %v, want %v:\n%s", lines, want, strings.Join(got, "\n"))
	}
}
