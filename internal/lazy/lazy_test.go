package lazy

import (
	"sync"
	"testing"
)

func TestRegexpCompilesOnceOnFirstUse(t *testing.T) {
	r := &Regexp{Expr: `^[a-z]+$`}
	if r.re != nil {
		t.Fatal("compiled before first use")
	}
	var wg sync.WaitGroup
	got := make([]any, 8)
	for i := range got {
		wg.Go(func() { got[i] = r.Get() })
	}
	wg.Wait()
	for i, g := range got {
		if g != got[0] {
			t.Fatalf("Get %d returned another *regexp.Regexp: compiled more than once", i)
		}
	}
	if !r.Get().MatchString("abc") || r.Get().MatchString("ab1") {
		t.Fatal("the expression does not match as written")
	}
}

func TestRegexpBadExpressionPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a bad expression did not panic")
		}
	}()
	(&Regexp{Expr: `(`}).Get()
}
