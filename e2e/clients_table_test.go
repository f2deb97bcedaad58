package e2e

// README's table of real clients is produced by the client tests: each records the row of
// what it ran (client, version, command, result, helper execs). With CGR_WRITE_DOCS=1 the
// table between the markers in README.md is rewritten from the rows of this run, and only
// those; otherwise each row must match the committed table, and a full run (no -run filter)
// where every tool is installed (CI, make test) must account for every committed row.

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
)

const (
	tableBegin = "<!-- clients table: written by the e2e client tests; CGR_WRITE_DOCS=1 go test -run 'TestClients' ./e2e rewrites it -->"
	tableEnd   = "<!-- end of clients table -->"
	tableHead  = "| client | version | command | result | helper execs |\n|---|---|---|---|---|"
)

// clientRow is one line of the table. Note says in what situation the command ran; it is
// printed after the command.
type clientRow struct {
	Client, Version, Command, Note, Result, Execs string
}

func (r clientRow) key() string { return r.Client + "\x00" + r.Command + "\x00" + r.Note }

func (r clientRow) cmdCell() string {
	if r.Note == "" {
		return "`" + r.Command + "`"
	}
	return "`" + r.Command + "` " + r.Note
}

func (r clientRow) line() string {
	return fmt.Sprintf("| %s | %s | %s | %s | %s |", r.Client, r.Version, r.cmdCell(), r.Result, r.Execs)
}

// clientOrder is the order of the table's rows; a client not listed sorts last.
var clientOrder = []string{
	"docker pull (Engine)", "docker buildx (BuildKit)", "docker compose v2", "docker-compose v1",
	"skopeo", "podman", "buildah", "oras", "regctl", "ko", "cosign", "helm v4",
}

var table struct {
	sync.Mutex
	rows []clientRow
}

func writeDocs() bool { return os.Getenv("CGR_WRITE_DOCS") == "1" }

// recordRow records what a client test ran; unless the docs are being written, the committed
// table must say the same.
func recordRow(t *testing.T, r clientRow) {
	t.Helper()
	table.Lock()
	table.rows = append(table.rows, r)
	table.Unlock()
	if writeDocs() {
		return
	}
	committed, err := readTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range committed {
		if c.key() == r.key() {
			if c != r {
				t.Errorf("README's client table says\n  %s\nthis run:\n  %s\n(CGR_WRITE_DOCS=1 go test -run 'TestClients' ./e2e rewrites the table)", c.line(), r.line())
			}
			return
		}
	}
	t.Errorf("README's client table has no row for %s `%s`; this run: %s (CGR_WRITE_DOCS=1 go test -run 'TestClients' ./e2e rewrites the table)", r.Client, r.Command, r.line())
}

func readmePath() (string, error) { return repoPath("README.md"), nil }

// readTable parses the committed table.
func readTable() ([]clientRow, error) {
	p, err := readmePath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	_, body, ok := strings.Cut(string(b), tableBegin)
	body, _, ok2 := strings.Cut(body, tableEnd)
	if !ok || !ok2 {
		return nil, fmt.Errorf("README.md has no client table between %q and %q", tableBegin, tableEnd)
	}
	var rows []clientRow
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| client |") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 5 {
			return nil, fmt.Errorf("README.md client table: a row of %d cells: %s", len(cells), line)
		}
		cmd, note := cells[2], ""
		if strings.HasPrefix(cmd, "`") {
			if end := strings.Index(cmd[1:], "`"); end >= 0 {
				cmd, note = cmd[1:end+1], strings.TrimSpace(cmd[end+2:])
			}
		}
		rows = append(rows, clientRow{Client: cells[0], Version: cells[1], Command: cmd, Note: note, Result: cells[3], Execs: cells[4]})
	}
	return rows, nil
}

func sortRows(rows []clientRow) {
	rank := func(c string) int {
		if i := slices.Index(clientOrder, c); i >= 0 {
			return i
		}
		return len(clientOrder)
	}
	slices.SortStableFunc(rows, func(a, b clientRow) int {
		if d := rank(a.Client) - rank(b.Client); d != 0 {
			return d
		}
		return strings.Compare(a.Command+a.Note, b.Command+b.Note)
	})
}

// finishTable runs after every test: it writes the table (CGR_WRITE_DOCS=1) or, after a
// full run, checks that the committed table holds no row that did not run. It returns the
// exit code to use.
func finishTable(code int) int {
	table.Lock()
	rows := slices.Clone(table.rows)
	table.Unlock()
	if writeDocs() && code == 0 {
		if err := writeFaultTimes(); err != nil {
			fmt.Fprintln(os.Stderr, "writing docs/BENCH.md's fault times:", err)
			return 1
		}
	}
	if writeDocs() {
		if code != 0 || len(rows) == 0 {
			fmt.Fprintln(os.Stderr, "README client table not written: the run failed or ran no client test")
			return code
		}
		if err := writeTable(rows); err != nil {
			fmt.Fprintln(os.Stderr, "writing README's client table:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "README.md: client table written (%d rows)\n", len(rows))
		return code
	}
	if f := flag.Lookup("test.run"); f == nil || f.Value.String() != "" || !e2etest.Strict() {
		return code // a partial run, or one that may skip a missing tool: rows that did not run are not judged
	}
	committed, err := readTable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ran := map[string]bool{}
	for _, r := range rows {
		ran[r.key()] = true
	}
	for _, c := range committed {
		if !ran[c.key()] {
			fmt.Fprintf(os.Stderr, "--- FAIL: README's client table has a row no test ran: %s\n", c.line())
			code = 1
		}
	}
	return code
}

func writeTable(rows []clientRow) error {
	sortRows(rows)
	p, err := readmePath()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	before, rest, ok := strings.Cut(string(b), tableBegin)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok || !ok2 {
		return fmt.Errorf("README.md has no client table between %q and %q", tableBegin, tableEnd)
	}
	var sb strings.Builder
	sb.WriteString(before + tableBegin + "\n" + tableHead + "\n")
	for _, r := range rows {
		sb.WriteString(r.line() + "\n")
	}
	sb.WriteString(tableEnd + after)
	return os.WriteFile(p, []byte(sb.String()), 0o644)
}
