package docstest_test

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// pending lists documents whose blocks are compiled and reported but do not
// fail the test yet, each with the reason. Keep it empty.
var pending = map[string]string{}

// imports maps the package names documents use to their import paths: a
// fragment imports the ones it uses. Chronicle's backends go by the aliases
// the whole project uses (espg, projpg, snappg, projjs).
var imports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "slog": "log/slog",
	"os": "os", "time": "time", "strings": "strings", "json": "encoding/json", "testing": "testing",
	"http": "net/http", "sql": "database/sql",

	"chronicle":      "github.com/chronicle-go/chronicle",
	"aggregate":      "github.com/chronicle-go/chronicle/aggregate",
	"aggregatetest":  "github.com/chronicle-go/chronicle/aggregate/aggregatetest",
	"codec":          "github.com/chronicle-go/chronicle/codec",
	"upcast":         "github.com/chronicle-go/chronicle/upcast",
	"eventstore":     "github.com/chronicle-go/chronicle/eventstore",
	"espg":           "github.com/chronicle-go/chronicle/eventstore/postgres",
	"memory":         "github.com/chronicle-go/chronicle/eventstore/memory",
	"eventstoretest": "github.com/chronicle-go/chronicle/eventstore/eventstoretest",
	"snapshot":       "github.com/chronicle-go/chronicle/snapshot",
	"snappg":         "github.com/chronicle-go/chronicle/snapshot/postgres",
	"projection":     "github.com/chronicle-go/chronicle/projection",
	"projpg":         "github.com/chronicle-go/chronicle/projection/postgres",
	"projjs":         "github.com/chronicle-go/chronicle/projection/jetstream",
	"projectiontest": "github.com/chronicle-go/chronicle/projection/projectiontest",
	"relay":          "github.com/chronicle-go/chronicle/relay",
	"wire":           "github.com/chronicle-go/chronicle/relay/wire",
	"cli":            "github.com/chronicle-go/chronicle/cli",
	"bank":           "github.com/chronicle-go/chronicle/examples/bank",
	"health":         "github.com/chronicle-go/chronicle/health",
	"console":        "github.com/chronicle-go/chronicle/console",

	"pgx":       "github.com/jackc/pgx/v5",
	"pgxpool":   "github.com/jackc/pgx/v5/pgxpool",
	"nats":      "github.com/nats-io/nats.go",
	"jetstream": "github.com/nats-io/nats.go/jetstream",
	"errgroup":  "golang.org/x/sync/errgroup",
	"otel":      "go.opentelemetry.io/otel",
	"trace":     "go.opentelemetry.io/otel/trace",
	"metric":    "go.opentelemetry.io/otel/metric",
}

// block is a ```go block of a document, or Go declarations in a
// <!-- compile: ... --> comment.
type block struct {
	file string // the document, relative to the module root
	line int    // the document's line of the code's first line
	code string
	sig  string // the wrapping function's signature, "func(...) ..."
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// lineDirective makes the compiler report positions in the document.
func (b block) lineDirective() string { return fmt.Sprintf("//line %s:%d\n", b.file, b.line) }

// document is the blocks of one Markdown file, in order.
type document struct {
	path   string
	blocks []block
}

const compileComment = "<!-- compile:"

// parseDocument extracts the Go blocks of a Markdown document and the
// compile comments that go with them.
func parseDocument(path, text string) (document, error) {
	doc := document{path: path}
	lines := strings.Split(text, "\n")
	sig, sigLine := "", 0
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(trimmed, compileComment):
			start := i
			body := strings.TrimPrefix(trimmed, compileComment)
			for !strings.Contains(body, "-->") {
				if i++; i == len(lines) {
					return doc, fmt.Errorf("%s:%d: unterminated compile comment", path, start+1)
				}
				body += "\n" + lines[i]
			}
			if rest := strings.TrimSpace(body[strings.Index(body, "-->")+3:]); rest != "" {
				return doc, fmt.Errorf("%s:%d: text after a compile comment on its line", path, i+1)
			}
			body = body[:strings.Index(body, "-->")]
			if s := strings.TrimSpace(body); strings.HasPrefix(s, "func(") {
				sig, sigLine = s, start+1
				continue
			}
			first := start + 1
			if nl := strings.IndexByte(body, '\n'); nl >= 0 && strings.TrimSpace(body[:nl]) == "" {
				body, first = body[nl+1:], start+2
			}
			doc.blocks = append(doc.blocks, block{file: path, line: first, code: body})
		case trimmed == "```go":
			indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
			start := i
			var code []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				code = append(code, strings.TrimPrefix(lines[i], indent))
			}
			if i == len(lines) {
				return doc, fmt.Errorf("%s:%d: unterminated code block", path, start+1)
			}
			doc.blocks = append(doc.blocks, block{file: path, line: start + 2, code: strings.Join(code, "\n"), sig: sig})
			sig = ""
		case strings.HasPrefix(trimmed, "```"):
			// Another language's block: skip it, compile comments and all.
			start := i
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			}
			if i == len(lines) {
				return doc, fmt.Errorf("%s:%d: unterminated code block", path, start+1)
			}
			if sig != "" {
				return doc, fmt.Errorf("%s:%d: a compile comment with a signature must come right before a go block", path, sigLine)
			}
		case sig != "" && trimmed != "":
			return doc, fmt.Errorf("%s:%d: a compile comment with a signature must come right before a go block", path, sigLine)
		}
	}
	return doc, nil
}

// isFile reports whether code is a complete Go file (it has a package
// clause), and its package name.
func isFile(code string) (string, bool) {
	f, err := parser.ParseFile(token.NewFileSet(), "", code, parser.PackageClauseOnly)
	if err != nil {
		return "", false
	}
	return f.Name.Name, true
}

// fragment turns a block of statements into a function of the block's
// signature: variables it declares are used, and a function with results
// that does not end in a return panics at its end.
func fragment(b block) (string, error) {
	sig := b.sig
	if sig == "" {
		sig = "func()"
	}
	wrapped := "package p\n\n" + sig[:4] + " _" + sig[4:] + " {\n"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", wrapped+b.code+"\n}\n", 0)
	if err != nil {
		return "", fmt.Errorf("%s: neither declarations nor statements: %v", b, err)
	}
	fn := f.Decls[0].(*ast.FuncDecl)
	var used []string
	for _, st := range fn.Body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok && id.Name != "_" && !slices.Contains(used, id.Name) {
						used = append(used, id.Name)
					}
				}
			}
		case *ast.DeclStmt:
			if gd, ok := st.Decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				for _, sp := range gd.Specs {
					for _, id := range sp.(*ast.ValueSpec).Names {
						if id.Name != "_" && !slices.Contains(used, id.Name) {
							used = append(used, id.Name)
						}
					}
				}
			}
		}
	}
	uses := ""
	for _, n := range used {
		uses += "_ = " + n + "; "
	}
	code := b.code
	list := fn.Body.List
	if endsInReturn(list) {
		// Use the variables on the return's line, so lines stay put.
		off := fset.Position(list[len(list)-1].Pos()).Offset - len(wrapped)
		code = code[:off] + uses + code[off:]
		uses = ""
	}
	end := "\n" + uses
	if fn.Type.Results != nil && !endsInReturn(list) {
		end += "\npanic(\"end of the example\")"
	}
	return sig[:4] + " _" + sig[4:] + " {\n" + b.lineDirective() + code + end + "\n}\n", nil
}

func endsInReturn(list []ast.Stmt) bool {
	if len(list) == 0 {
		return false
	}
	_, ok := list[len(list)-1].(*ast.ReturnStmt)
	return ok
}

// formatted fails unless the block is laid out as gofmt lays it out: a
// fragment as the body of a function, declarations as a file's.
func formatted(b block, kind string) error {
	src, prefix, indent := b.code, "", ""
	switch kind {
	case "decls":
		prefix = "package p\n\n"
	case "fragment":
		prefix, indent = "package p\n\nfunc _() {\n", "\t"
	}
	var in strings.Builder
	in.WriteString(prefix)
	for _, l := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
		if l != "" {
			l = indent + l
		}
		in.WriteString(l + "\n")
	}
	if indent != "" {
		in.WriteString("}\n")
	}
	out, err := format.Source([]byte(in.String()))
	if err != nil {
		return fmt.Errorf("%s: %v", b, err)
	}
	if got, want := strings.Split(in.String(), "\n"), strings.Split(string(out), "\n"); !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				return fmt.Errorf("%s: not as gofmt lays it out; line %d should read %q", b, b.line+i-strings.Count(prefix, "\n"), strings.TrimPrefix(want[i], indent))
			}
		}
		return fmt.Errorf("%s: not as gofmt lays it out", b)
	}
	return nil
}

// generate writes the document's package into dir: its complete files as
// they are, and one file of its declarations and fragments, importing the
// packages they use.
func generate(doc document, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pkg := ""
	var body strings.Builder
	for i, b := range doc.blocks {
		if name, ok := isFile(b.code); ok {
			if pkg != "" && name != pkg {
				return fmt.Errorf("%s: package %s, but an earlier block of %s is package %s", b, name, doc.path, pkg)
			}
			pkg = name
			if err := formatted(b, "file"); err != nil {
				return err
			}
			src := b.lineDirective() + b.code + "\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("block%02d.go", i)), []byte(src), 0o644); err != nil {
				return err
			}
			continue
		}
		if b.sig == "" {
			if _, err := parser.ParseFile(token.NewFileSet(), "", "package p\n"+b.code, 0); err == nil {
				if err := formatted(b, "decls"); err != nil {
					return err
				}
				body.WriteString("\n" + b.lineDirective() + b.code + "\n")
				continue
			}
		}
		fn, err := fragment(b)
		if err != nil {
			return err
		}
		if err := formatted(b, "fragment"); err != nil {
			return err
		}
		body.WriteString("\n" + fn)
	}
	if body.Len() == 0 {
		return nil
	}
	if pkg == "" {
		pkg = "docs"
	}
	src := "package " + pkg + "\n" + body.String()
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				declared[d.Name.Name] = true
			}
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					declared[sp.Name.Name] = true
				case *ast.ValueSpec:
					for _, n := range sp.Names {
						declared[n.Name] = true
					}
				case *ast.ImportSpec:
					p, _ := strconv.Unquote(sp.Path.Value)
					name := filepath.Base(p)
					if sp.Name != nil {
						name = sp.Name.Name
					}
					declared[name] = true
				}
			}
		}
	}
	need := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && imports[id.Name] != "" && !declared[id.Name] {
				need[id.Name] = true
			}
		}
		return true
	})
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	sort.Strings(names)
	var imp strings.Builder
	for _, n := range names {
		p := imports[n]
		if filepath.Base(p) == n || strings.HasSuffix(p, "/v5") && n == "pgx" {
			fmt.Fprintf(&imp, "import %q\n", p)
		} else {
			fmt.Fprintf(&imp, "import %s %q\n", n, p)
		}
	}
	src = "package " + pkg + "\n\n" + imp.String() + body.String()
	return os.WriteFile(filepath.Join(dir, "fragments.go"), []byte(src), 0o644)
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// documents reads README.md and every Markdown file under docs/.
func documents(t *testing.T, root string) []document {
	t.Helper()
	paths := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var docs []document
	for _, p := range paths {
		text, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := parseDocument(p, string(text))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(doc.blocks) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// builder generates documents' packages in a directory inside the module
// and compiles them.
type builder struct {
	t      *testing.T
	goTool string
	root   string // the module's root
	tmp    string // where the packages go
}

func newBuilder(t *testing.T) *builder {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The packages live inside the module, so that they import it; a
	// directory starting with "_" is left out of ./... patterns.
	tmp, err := os.MkdirTemp(here, "_docs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return &builder{t: t, goTool: goTool, root: moduleRoot(t), tmp: tmp}
}

// generate writes doc's package and returns its ./-relative path.
func (b *builder) generate(doc document) (string, error) {
	dir := filepath.Join(b.tmp, nonIdent.ReplaceAllString(strings.ToLower(strings.TrimSuffix(doc.path, ".md")), "_"))
	if err := generate(doc, dir); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(b.root, dir)
	return "./" + filepath.ToSlash(rel), err
}

// check runs go build, which reports every compile error (vet only the
// first of a package), then go vet. Positions in its output are the
// documents' (//line directives).
func (b *builder) check(pkgs []string) (string, error) {
	for _, tool := range []string{"build", "vet"} {
		cmd := exec.Command(b.goTool, append([]string{tool}, pkgs...)...)
		cmd.Dir = b.root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				b.t.Fatal(err)
			}
			return generatedDir.ReplaceAllString(out.String(), ""), err
		}
	}
	return "", nil
}

var generatedDir = regexp.MustCompile(`\S*_docs[0-9]+/[a-z0-9_]+/`)

// TestGoBlocksCompile compiles every Go block of README.md and docs/ with
// go build and go vet, by the conventions of docs/README.md.
func TestGoBlocksCompile(t *testing.T) {
	b := newBuilder(t)
	docs := documents(t, b.root)
	if len(docs) < 5 {
		t.Fatalf("found Go blocks in only %d documents", len(docs))
	}
	var checked, reported []string
	for _, doc := range docs {
		pkg, err := b.generate(doc)
		reason, isPending := pending[doc.path]
		switch {
		case err != nil && isPending:
			t.Logf("pending (%s): %v", reason, err)
		case err != nil:
			t.Error(err)
		case isPending:
			reported = append(reported, pkg)
		default:
			checked = append(checked, pkg)
		}
	}
	if len(checked) > 0 {
		if out, err := b.check(checked); err != nil {
			t.Errorf("Go blocks of the docs do not compile (see docs/README.md for the conventions):\n%s", out)
		}
	}
	for _, p := range reported {
		if out, err := b.check([]string{p}); err != nil {
			t.Logf("pending %s does not compile yet:\n%s", p, out)
		}
	}
}

// TestBrokenBlocksAreReported checks that the test is not vacuous: a
// fragment using what its signature does not give, or a badly laid out
// block, fails with the document's file and line.
func TestBrokenBlocksAreReported(t *testing.T) {
	b := newBuilder(t)
	const text = "# Broken\n\n<!-- compile: func(ctx context.Context) error -->\n```go\nerr := store.Migrate(ctx)\n```\n"
	doc, err := parseDocument("docs/broken.md", text)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := b.generate(doc)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.check([]string{pkg})
	if err == nil || !strings.Contains(out, "docs/broken.md:5") || !strings.Contains(out, "undefined: store") {
		t.Fatalf("want docs/broken.md:5: undefined: store, got %v:\n%s", err, out)
	}

	doc, err = parseDocument("docs/ugly.md", "```go\nx  := 1\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.generate(doc); err == nil || !strings.Contains(err.Error(), "docs/ugly.md:2: not as gofmt lays it out") {
		t.Fatalf("want a gofmt failure at docs/ugly.md:2, got %v", err)
	}

	for _, text := range []string{
		"<!-- compile: func() -->\ntext\n```go\nx := 1\n```\n",
		"```go\nx := 1\n",
		"<!-- compile: func()\n",
	} {
		if _, err := parseDocument("docs/bad.md", text); err == nil {
			t.Errorf("parseDocument(%q) accepted it", text)
		}
	}
}
