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

// What imageSegments reads from the mapped ELF header is what debug/elf reads from the file:
// every read-only PT_LOAD, page-aligned.
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
	var want []segment
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0 && p.Filesz > 0 {
			want = append(want, segment{uintptr(p.Vaddr) &^ (pageSize - 1), uintptr(p.Vaddr+p.Filesz+pageSize-1) &^ (pageSize - 1)})
		}
	}
	segs, n := imageSegments()
	if len(want) != 2 || n != len(want) {
		t.Fatalf("segments %v, the file's read-only loads %v (want two: code, then read-only data)", segs[:n], want)
	}
	for i := range want {
		if segs[i] != want[i] {
			t.Errorf("segment %d: %#x-%#x, the file says %#x-%#x", i, segs[i].start, segs[i].end, want[i].start, want[i].end)
		}
	}
}

// The package's initialisation mapped the whole image: in /proc/self/smaps every read-only
// mapping of this executable is resident in full. Without it a test binary runs a small part
// of its code, and most of those pages are never mapped.
func TestInitMappedTheImage(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cur string // the mapping whose fields follow, when it is ours and read-only
	var size int
	checked := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"):
			cur = ""
			if fields[5] == exe && !strings.Contains(fields[1], "w") {
				cur = fields[0] + " " + fields[1]
			}
		case cur != "" && fields[0] == "Size:":
			size, _ = strconv.Atoi(fields[1])
		case cur != "" && fields[0] == "Rss:":
			rss, _ := strconv.Atoi(fields[1])
			checked++
			if rss < size {
				t.Errorf("%s: %d of %d KB resident: not mapped in full", cur, rss, size)
			}
		}
	}
	if checked != 2 {
		t.Fatalf("found %d read-only mappings of %s in smaps, want 2", checked, exe)
	}
}

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
