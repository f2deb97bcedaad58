package prefault

import "unsafe" // and go:linkname

// syscall3 is a raw three-argument system call: r is the result, or -errno.
func syscall3(trap, a1, a2, a3 uintptr) (r int64)

// runtimeAuxv is the auxiliary vector the kernel gave the process, as (tag, value) pairs:
// the runtime keeps it and offers it by this name to golang.org/x/sys (go.dev/issue/67401).
// It says where the kernel mapped the program headers, so no fixed address is assumed.
//
//go:linkname runtimeAuxv runtime.getAuxv
func runtimeAuxv() []uintptr

const (
	sysMadvise = 28

	madvPopulateRead  = 22 // Linux 5.14 on; before it madvise says EINVAL and nothing happens
	madvPopulateWrite = 23

	// heapAhead is how much of the heap after the first object allocated here is mapped
	// writable at once. A warm get's allocations after this point touched 91 of these 128
	// pages (perf, three runs), one page fault each.
	heapAhead = 512 << 10

	pageSize = 4096

	atPhdr  = 3 // auxiliary vector: where the program headers are mapped
	atPhent = 4 // the size of one
	atPhnum = 5 // how many

	ptLoad = 1
	ptPhdr = 6
	pfX    = 1
	pfW    = 2

	maxSegments = 4 // the Go linker makes two read-only ones: code, then rodata and tables
)

type segment struct{ start, end uintptr }

// mark is the first object the heap hands out here: the allocator gives out pages upward
// from where it is, so what the rest of the process allocates mostly lies in the pages after
// it. Kept in a package variable so that it is on the heap.
var mark *[64]byte

func init() {
	segs, n := imageSegments()
	for _, s := range segs[:n] {
		syscall3(sysMadvise, s.start, s.end-s.start, madvPopulateRead)
	}
	// The heap's next pages, read and written soon, made present in one call. Pages already
	// in use are left as they are; those it maps are zero-filled, as fresh memory must be.
	// Where the range runs past what the runtime has mapped, the call stops there with an
	// error, which changes nothing.
	mark = new([64]byte)
	syscall3(sysMadvise, uintptr(unsafe.Pointer(mark))&^(pageSize-1), heapAhead, madvPopulateWrite)
}

// imageSegments are the read-only PT_LOAD segments of this program as mapped, page-aligned,
// from the program headers the auxiliary vector points at (moved by the load bias of a PIE,
// which PT_PHDR gives); none when they look wrong or when no executable segment among them
// holds this function.
func imageSegments() (segs [maxSegments]segment, n int) {
	var phdr, phent, phnum uintptr
	auxv := runtimeAuxv()
	for i := 0; i+1 < len(auxv); i += 2 {
		switch auxv[i] {
		case atPhdr:
			phdr = auxv[i+1]
		case atPhent:
			phent = auxv[i+1]
		case atPhnum:
			phnum = auxv[i+1]
		}
	}
	if phdr == 0 || phent != 56 || phnum == 0 || phnum > 64 {
		return segs, 0
	}
	hdrs := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), phdr)), phnum*phent)
	bias := uintptr(0)
	for i := range phnum {
		if ph := hdrs[i*phent:]; le32(ph) == ptPhdr {
			bias = phdr - uintptr(le64(ph[16:]))
		}
	}
	self := funcPC(imageSegments)
	ours := false
	for i := range phnum {
		ph := hdrs[i*phent:]
		typ, flags := le32(ph[0:]), le32(ph[4:])
		vaddr, filesz := bias+uintptr(le64(ph[16:])), uintptr(le64(ph[32:]))
		if typ != ptLoad || flags&pfW != 0 || filesz == 0 || n == maxSegments {
			continue
		}
		if flags&pfX != 0 && vaddr <= self && self < vaddr+filesz {
			ours = true
		}
		segs[n] = segment{vaddr &^ (pageSize - 1), (vaddr + filesz + pageSize - 1) &^ (pageSize - 1)}
		n++
	}
	if !ours {
		return segs, 0
	}
	return segs, n
}

// funcPC is the entry of f: a func value points at a word holding it.
func funcPC(f func() ([maxSegments]segment, int)) uintptr { return **(**uintptr)(unsafe.Pointer(&f)) }

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func le32(b []byte) uint32 { return uint32(le16(b)) | uint32(le16(b[2:]))<<16 }
func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }
