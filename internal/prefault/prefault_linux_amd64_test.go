package prefault

import (
	"bufio"
	"debug/elf"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// What imageSegments reads from the mapped program headers is what debug/elf reads from the
// file: every read-only PT_LOAD, page-aligned, moved by the load bias (the auxiliary vector's
// AT_PHDR against the file's PT_PHDR; zero unless the test binary is a PIE).
func TestImageSegmentsAreTheReadOnlyLoads(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bias := uintptr(0)
	auxv := runtimeAuxv()
	for _, p := range f.Progs {
		if p.Type == elf.PT_PHDR {
			for i := 0; i+1 < len(auxv); i += 2 {
				if auxv[i] == atPhdr {
					bias = auxv[i+1] - uintptr(p.Vaddr)
				}
			}
		}
	}
	var want []segment
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0 && p.Filesz > 0 {
			v := bias + uintptr(p.Vaddr)
			want = append(want, segment{v &^ (pageSize - 1), (v + uintptr(p.Filesz) + pageSize - 1) &^ (pageSize - 1)})
		}
	}
	segs, n := imageSegments()
	if len(want) < 2 || n != len(want) {
		t.Fatalf("segments %v, the file's read-only loads %v (want code and read-only data at least)", segs[:n], want)
	}
	for i := range want {
		if segs[i] != want[i] {
			t.Errorf("segment %d: %#x-%#x, the file says %#x-%#x", i, segs[i].start, segs[i].end, want[i].start, want[i].end)
		}
	}
}

// The package's initialisation mapped the whole image: in /proc/self/smaps every mapping
// that holds a segment imageSegments names is resident in full. Without it a test binary
// runs a small part of its code, and most of those pages are never mapped.
func TestInitMappedTheImage(t *testing.T) {
	segs, n := imageSegments()
	if n < 2 {
		t.Fatalf("imageSegments found %d segments", n)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type vma struct {
		start, end uintptr
		size, rss  int
	}
	var vmas []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			lo, hi, _ := strings.Cut(fields[0], "-")
			s, _ := strconv.ParseUint(lo, 16, 64)
			e, _ := strconv.ParseUint(hi, 16, 64)
			vmas = append(vmas, vma{start: uintptr(s), end: uintptr(e)})
		case len(vmas) > 0 && fields[0] == "Size:":
			vmas[len(vmas)-1].size, _ = strconv.Atoi(fields[1])
		case len(vmas) > 0 && fields[0] == "Rss:":
			vmas[len(vmas)-1].rss, _ = strconv.Atoi(fields[1])
		}
	}
	for _, s := range segs[:n] {
		covered := uintptr(0)
		for _, v := range vmas {
			if v.end <= s.start || v.start >= s.end {
				continue
			}
			covered += min(v.end, s.end) - max(v.start, s.start)
			if v.rss < v.size {
				t.Errorf("%#x-%#x: %d of %d KB resident: not mapped in full", v.start, v.end, v.rss, v.size)
			}
		}
		if covered != s.end-s.start {
			t.Errorf("segment %#x-%#x: smaps covers %d of its %d bytes", s.start, s.end, covered, s.end-s.start)
		}
	}
}

const sysMincore = 27

// The heap's next heapAhead bytes after mark are resident (mincore says so page by page):
// the test binary itself allocates far less than that during its initialisation.
func TestInitMappedTheHeapAhead(t *testing.T) {
	start := uintptr(unsafe.Pointer(mark)) &^ (pageSize - 1)
	vec := make([]byte, heapAhead/pageSize)
	if r := syscall3(sysMincore, start, heapAhead, uintptr(unsafe.Pointer(&vec[0]))); r != 0 {
		t.Fatalf("mincore: errno %d", -r)
	}
	missing := 0
	for _, v := range vec {
		if v&1 == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of the %d pages after the mark are not resident", missing, len(vec))
	}
}

// anonHuge is the AnonHugePages (kB) of the mappings in /proc/self/smaps that overlap
// [start, end): a madvise of part of a mapping splits it in two.
func anonHuge(t *testing.T, start, end uintptr) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in, kb := false, 0
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			s, _ := strconv.ParseUint(lo, 16, 64)
			e, _ := strconv.ParseUint(hi, 16, 64)
			in = uintptr(s) < end && start < uintptr(e)
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "AnonHugePages:" {
			v, _ := strconv.Atoi(fields[1])
			kb += v
		}
	}
	return kb
}

// resident counts the pages of [start, start+n) that mincore says are in memory.
func resident(t *testing.T, start, n uintptr) int {
	t.Helper()
	vec := make([]byte, n/pageSize)
	if r := syscall3(sysMincore, start, n, uintptr(unsafe.Pointer(&vec[0]))); r != 0 {
		t.Fatalf("mincore: errno %d", -r)
	}
	c := 0
	for _, v := range vec {
		c += int(v & 1)
	}
	return c
}

// anon is a private anonymous mapping of 10 MB for one test (made with package syscall: the
// package's own stub takes three arguments), and the index in it of the first 2 MB boundary
// after its first page. Its first and last pages are PROT_NONE, so that the kernel does not
// merge it with a neighbouring mapping and smaps speaks of it alone.
func anon(t *testing.T) (b []byte, aligned int) {
	t.Helper()
	b, err := syscall.Mmap(-1, 0, 5*hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(b) })
	if err := syscall.Mprotect(b[:pageSize], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mprotect(b[len(b)-pageSize:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	p := uintptr(unsafe.Pointer(&b[0])) + pageSize
	return b, int((p+hugePage-1)&^(hugePage-1)-p) + pageSize
}

func addr(b []byte, i int) uintptr { return uintptr(unsafe.Pointer(&b[i])) }

// collapses says whether this kernel makes huge pages with MADV_COLLAPSE (Linux 6.1 on,
// transparent huge pages not off), tried on a mapping of the test's own.
func collapses(t *testing.T) bool {
	t.Helper()
	b, a := anon(t)
	b[a] = 1
	return syscall3(sysMadvise, addr(b, a), hugePage, madvCollapse) == 0
}

// heap, given an address 100 KB before a 2 MB boundary, makes both regions huge pages (the
// one in use, whose contents stay, and the next one), and nothing past them.
func TestHeapMakesHugePages(t *testing.T) {
	if !collapses(t) {
		t.Log("this kernel does not collapse to huge pages: TestHeapFallsBackToSmallPages is the case that applies")
		return
	}
	b, a := anon(t)
	m := a + hugePage - 100<<10
	b[m-3*pageSize] = 0xab // a page in use before m
	heap(addr(b, m))
	if b[m-3*pageSize] != 0xab {
		t.Fatalf("a page in use holds %#x after heap, not 0xab", b[m-3*pageSize])
	}
	if got := anonHuge(t, addr(b, a), addr(b, a)+3*hugePage); got != 2*hugePage>>10 {
		t.Errorf("AnonHugePages %d kB, want %d (the region holding m and the next)", got, 2*hugePage>>10)
	}
	if n := resident(t, addr(b, a)+2*hugePage, hugePage); n != 0 {
		t.Errorf("%d pages resident past the two regions", n)
	}
}

// Where huge pages are refused (here: MADV_NOHUGEPAGE, as GODEBUG=disablethp=1 sets on the
// runtime's heap), heap makes the heapAhead bytes from m present as small pages, and no more.
func TestHeapFallsBackToSmallPages(t *testing.T) {
	b, a := anon(t)
	if err := syscall.Madvise(b[a:a+2*hugePage], 15 /* MADV_NOHUGEPAGE */); err != nil {
		t.Fatal(err)
	}
	m := a + hugePage/2 + 100
	heap(addr(b, m))
	if n := resident(t, addr(b, m)&^(pageSize-1), heapAhead); n != heapAhead/pageSize {
		t.Errorf("%d of the %d pages from m resident", n, heapAhead/pageSize)
	}
	if n := resident(t, addr(b, a), hugePage/2); n != 0 {
		t.Errorf("%d pages before m resident", n)
	}
	if got := anonHuge(t, addr(b, a), addr(b, a)+2*hugePage); got != 0 {
		t.Errorf("AnonHugePages %d kB in a mapping that refuses them", got)
	}
}
