// Package lazy holds values that are built on first use and declared without any work at
// package initialisation. Every start of the helper, each `get` included, runs the
// initialisation of every package linked: a regexp compiled there, or a sync.OnceValue made
// there (a closure and its state on the heap), is paid by every pull, and a package with any
// initialisation at all touches its code's pages on every start.
package lazy

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled on first use. Declared as a composite literal,
// var re = lazy.Regexp{Expr: `^a+$`}, it is laid out by the linker and costs no start.
type Regexp struct {
	Expr string
	once sync.Once
	re   *regexp.Regexp
}

// Get compiles Expr the first time (panicking on a bad expression, as regexp.MustCompile
// does) and returns it.
func (r *Regexp) Get() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.Expr) })
	return r.re
}
