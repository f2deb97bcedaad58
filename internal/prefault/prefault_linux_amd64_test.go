package prefault

import (
	"bufio"
	"debug/elf"
	"os"
	"strconv"
	"strings"
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

// The heap's next heapAhead bytes after mark are resident (mincore says so page by page), as
// far as the runtime had mapped its heap then: the test binary itself allocates far less
// than that during its initialisation. (The runtime maps its heap in 4 MB chunks, 4 MB
// aligned, whole, from a random page of the first, so mark may lie near a chunk's end, where
// the call stopped; the next chunk, mapped later, can have joined the mapping since.)
func TestInitMappedTheHeapAhead(t *testing.T) {
	const chunk = 4 << 20
	start := uintptr(unsafe.Pointer(mark)) &^ (pageSize - 1)
	end := min(start+heapAhead, (start+chunk)&^(chunk-1))
	vec := make([]byte, (end-start)/pageSize)
	if r := syscall3(sysMincore, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); r != 0 {
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
