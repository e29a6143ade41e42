package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// recipe returns the first fenced code block after the line in
// docs/operators/<doc> that starts with marker.
func recipe(t *testing.T, doc, marker string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "operators", doc))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+marker)
	if !ok {
		t.Fatalf("docs/operators/%s has no %q", doc, marker)
	}
	_, block, ok := strings.Cut(after, "\n```")
	if ok {
		_, block, ok = strings.Cut(block, "\n") // past the info string
	}
	if ok {
		block, _, ok = strings.Cut(block, "\n```")
	}
	if !ok {
		t.Fatalf("docs/operators/%s: no fenced code block after %q", doc, marker)
	}
	return block + "\n"
}

// TestDocsPythonRecipe runs docs/operators/vm.md's Python requests script, as the
// page has it, under `credproxy exec` against the fake CSP and API: the
// API sees a valid CSP token, though neither the script nor its
// environment holds one.
func TestDocsPythonRecipe(t *testing.T) {
	const apiToken = "docsPy-3b2a-41c0-beef"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	script := filepath.Join(t.TempDir(), "wavefront_sources.py")
	if err := os.WriteFile(script, []byte(recipe(t, "vm.md", "<!-- recipe: python-requests")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	env["WAVEFRONT_URL"] = echoURL
	code, out, errOut := runBinary(t, env, "exec", "--", python(t), script)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// The script prints the API's JSON as a Python dict.
	if !strings.Contains(out, "'authorized': True") || !strings.Contains(out, "'path': '/api/v2/source'") {
		t.Errorf("the script printed %q, want the echo of an authorized /api/v2/source", out)
	}
	tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer ")
	if !csp.Valid(tok) {
		t.Error("the API saw no valid CSP token")
	}
	logtest.AssertNoSecrets(t, "exec output", out+errOut, apiToken, tok)
}

// repoRoot is the repository's root, seen from this package.
var repoRoot = filepath.Join("..", "..")

// markdownFiles are the pages whose links TestDocsLinks checks: README.md,
// CONTRIBUTING.md and everything under docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(repoRoot, path)
			files = append(files, rel)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// proseLines returns the lines of a markdown page with those of fenced
// code blocks blanked, so that only links and headings that mean
// something remain and line i is still the page's line i+1.
func proseLines(text string) []string {
	var out []string
	fenced := false
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			line = ""
		}
		if fenced {
			line = ""
		}
		out = append(out, line)
	}
	return out
}

var (
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	linkRE    = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	slugDrop  = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// anchors returns the fragment ids GitHub gives the headings of a page.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(text) {
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id := strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := seen[id]; n > 0 {
			ids[id+"-"+strconv.Itoa(n)] = true
		} else {
			ids[id] = true
		}
		seen[id]++
	}
	return ids
}

// TestDocsLinks: every relative link in README.md, CONTRIBUTING.md and
// docs/ points at a file that exists, and a link to a heading of a
// markdown page at a heading that exists.
func TestDocsLinks(t *testing.T) {
	pages := map[string]string{}
	read := func(rel string) (string, bool) {
		if text, ok := pages[rel]; ok {
			return text, true
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, rel))
		if err != nil {
			return "", false
		}
		pages[rel] = string(b)
		return string(b), true
	}
	links := 0
	for _, page := range markdownFiles(t) {
		text, ok := read(page)
		if !ok {
			t.Errorf("%s is missing", page)
			continue
		}
		for i, line := range proseLines(text) {
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				file, frag, _ := strings.Cut(target, "#")
				rel := page
				if file != "" {
					rel = filepath.Clean(filepath.Join(filepath.Dir(page), filepath.FromSlash(file)))
				}
				if strings.HasPrefix(rel, "..") {
					t.Errorf("%s:%d: %s leaves the repository", page, i+1, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
					t.Errorf("%s:%d: %s: no such file %s", page, i+1, target, rel)
					continue
				}
				if frag == "" || !strings.HasSuffix(rel, ".md") {
					continue
				}
				if linked, _ := read(rel); !anchors(linked)[frag] {
					t.Errorf("%s:%d: %s: %s has no heading #%s", page, i+1, target, rel, frag)
				}
			}
		}
	}
	if links < 50 {
		t.Errorf("found %d relative links; the link pattern is broken", links)
	}
}

var (
	// bareCitation is a citation of the design notes that were never in
	// the repository.
	bareCitation = regexp.MustCompile(`\b(DESIGN|PROTOCOLS)\.md`)
	docCitation  = regexp.MustCompile(`docs/(design|protocols)\.md`)
	// designSection follows docs/design.md: a quoted heading.
	designSection = regexp.MustCompile(`^(?:'s)?,? "([^"]+)"`)
	// protocolSections follows docs/protocols.md: section numbers.
	protocolSections = regexp.MustCompile(`^,? (?:sections? )?(\d+[a-z]?(?:(?:, | and |, and )\d+[a-z]?)*)\b`)
	sectionNumber    = regexp.MustCompile(`\d+[a-z]?`)
	numberedHeading  = regexp.MustCompile(`^#{2,3} (\d+[a-z]?)\. `)
)

// TestDocsCitations: every Go comment that cites docs/design.md names one
// of its headings in quotes, and every one that cites docs/protocols.md
// names sections that exist there (1a, 2c, 3), so that a reader of the
// code lands on the right paragraph. No comment cites DESIGN.md or
// PROTOCOLS.md, which are not in the repository.
func TestDocsCitations(t *testing.T) {
	design, err := os.ReadFile(filepath.Join(repoRoot, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	protocols, err := os.ReadFile(filepath.Join(repoRoot, "docs", "protocols.md"))
	if err != nil {
		t.Fatal(err)
	}
	titles := map[string]bool{}
	for _, line := range proseLines(string(design)) {
		if m := headingRE.FindStringSubmatch(line); m != nil {
			titles[m[1]] = true
		}
	}
	numbers := map[string]bool{}
	for _, line := range proseLines(string(protocols)) {
		if m := numberedHeading.FindStringSubmatch(line); m != nil {
			numbers[m[1]] = true
		}
	}
	citations := 0
	fset := token.NewFileSet()
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != repoRoot && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || path == filepath.Join(repoRoot, "cmd", "credproxy", "docs_test.go") {
			return nil // this file states the rule, with examples
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, cg := range f.Comments {
			text := strings.Join(strings.Fields(cg.Text()), " ")
			where := fset.Position(cg.Pos())
			if m := bareCitation.FindString(text); m != "" {
				t.Errorf("%s: cites %s, which is not in the repository; cite docs/design.md or docs/protocols.md", where, m)
			}
			for _, loc := range docCitation.FindAllStringSubmatchIndex(text, -1) {
				citations++
				doc, after := text[loc[2]:loc[3]], text[loc[1]:]
				switch doc {
				case "design":
					m := designSection.FindStringSubmatch(after)
					if m == nil {
						t.Errorf("%s: cites docs/design.md without a quoted section title: %q", where, text[loc[0]:min(len(text), loc[1]+40)])
					} else if !titles[m[1]] {
						t.Errorf("%s: docs/design.md has no section %q", where, m[1])
					}
				case "protocols":
					m := protocolSections.FindStringSubmatch(after)
					if m == nil {
						t.Errorf("%s: cites docs/protocols.md without a section number: %q", where, text[loc[0]:min(len(text), loc[1]+40)])
						continue
					}
					for _, n := range sectionNumber.FindAllString(m[1], -1) {
						if !numbers[n] {
							t.Errorf("%s: docs/protocols.md has no section %s", where, n)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if citations < 20 {
		t.Errorf("found %d citations of docs/design.md and docs/protocols.md; the walk is broken", citations)
	}
}
