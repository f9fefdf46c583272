// Package typescript holds the TypeScript types generated from the
// migrations and the checks that compile typical queries against them.
// Its tests fail when the committed types differ from what the current
// migrations produce, and when the checks no longer compile.
//
// They need Node.js and the pinned packages (scripts/types.sh deps, which
// runs npm ci). Without them the tests skip, except under CI=true, where
// they fail.
package typescript

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/tools/typesgen"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// requireTools skips (fails under CI) when node or node_modules is missing.
func requireTools(t *testing.T) {
	t.Helper()
	err := typesgen.CheckTools(".")
	if err == nil {
		if _, serr := os.Stat("node_modules/typescript/bin/tsc"); serr != nil {
			err = fmt.Errorf("node_modules/typescript is missing: run scripts/types.sh deps (npm ci)")
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v (CI must run scripts/types.sh deps before go test)", err)
	}
	t.Skipf("%v", err)
}

// generate takes a fresh migrated database from pgtest, applies extraSQL
// and writes the generated files into a new temporary directory.
func generate(t *testing.T, extraSQL string) string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := typesgen.FromDatabase(ctx, pgtest.NewDatabase(t), typesgen.Options{
		Dir:      ".",
		Out:      out,
		ExtraSQL: extraSQL,
	})
	if err != nil {
		t.Fatalf("generate types: %v", err)
	}
	return out
}

// tsc compiles the project in dir without emitting and returns its output.
func tsc(t *testing.T, dir string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "node_modules/typescript/bin/tsc", "--noEmit", "--pretty", "false", "-p", dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGeneratedTypesMatchMigrations(t *testing.T) {
	t.Parallel()
	requireTools(t)
	fresh := generate(t, "")
	var stale []string
	for _, name := range typesgen.Files {
		want, err := os.ReadFile(filepath.Join(fresh, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		committed := filepath.Join("generated", filepath.FromSlash(name))
		got, err := os.ReadFile(committed)
		if err != nil {
			stale = append(stale, fmt.Sprintf("%s: %v", committed, err))
			continue
		}
		if !bytes.Equal(got, want) {
			stale = append(stale, fmt.Sprintf("db/typescript/%s differs from what the migrations produce:\n%s",
				committed, firstDifference(string(got), string(want))))
		}
	}
	if len(stale) > 0 {
		t.Fatalf("the generated TypeScript types are out of date with supabase/migrations: run make types and commit the result\n\n%s",
			strings.Join(stale, "\n\n"))
	}
}

// firstDifference quotes the first line where committed and fresh differ.
func firstDifference(committed, fresh string) string {
	a, b := strings.Split(committed, "\n"), strings.Split(fresh, "\n")
	for i := 0; i < max(len(a), len(b)); i++ {
		var la, lb string
		if i < len(a) {
			la = a[i]
		}
		if i < len(b) {
			lb = b[i]
		}
		if la != lb || i >= len(a) || i >= len(b) {
			return fmt.Sprintf("  line %d\n  committed: %q\n  expected:  %q", i+1, la, lb)
		}
	}
	return "  (no line differs)"
}

func TestChecksCompile(t *testing.T) {
	t.Parallel()
	requireTools(t)
	if out, err := tsc(t, "."); err != nil {
		t.Fatalf("tsc --noEmit -p db/typescript: %v\n%s", err, out)
	}
}

// TestChecksCatchSchemaChanges moves the schema, regenerates the types and
// expects the checks to stop compiling for both reasons at once: a renamed
// column (the queries that use it break) and a new enum value (queries that
// must be rejected become valid, so their @ts-expect-error is unused).
func TestChecksCatchSchemaChanges(t *testing.T) {
	t.Parallel()
	requireTools(t)
	nodeModules, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	const moved = `alter table public.jobs rename column progress to percent_done;
alter type public.job_status add value 'running';`
	gen := generate(t, moved)
	project := t.TempDir()
	copyTree(t, "checks", filepath.Join(project, "checks"))
	copyTree(t, gen, filepath.Join(project, "generated"))
	for _, f := range []string{"tsconfig.json", "drizzle.config.ts"} {
		copyFile(t, f, filepath.Join(project, f))
	}
	if err := os.Symlink(nodeModules, filepath.Join(project, "node_modules")); err != nil {
		t.Fatal(err)
	}
	out, err := tsc(t, project)
	if err == nil {
		t.Fatalf("after\n%s\nthe checks still compile; they must not", moved)
	}
	// Per file: the renamed column is reported (TS2339: no such property),
	// and so is each rejected query that now compiles (TS2578).
	for _, file := range []string{"checks/supabase.ts", "checks/drizzle.ts", "checks/realtime.ts"} {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, file) {
				lines = append(lines, l)
			}
		}
		got := strings.Join(lines, "\n")
		if !strings.Contains(got, "progress") {
			t.Errorf("%s: no error about the renamed column progress:\n%s", file, out)
		}
		if !strings.Contains(got, "TS2578") {
			t.Errorf("%s: no unused @ts-expect-error for the new status value:\n%s", file, out)
		}
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		copyFile(t, path, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
