// Package prefault maps the program's read-only image (its code, and the read-only data and
// tables after it) into the process in one madvise(MADV_POPULATE_READ) call each, at the
// start of package initialisation, instead of one page fault per 64 KB as the code runs; and
// the next 512 KB of the heap in one MADV_POPULATE_WRITE, instead of a fault per page as the
// allocator hands them out.
//
// A protocol action is a process per pull that lives for about ten milliseconds, and most of
// that is spent starting: the runtime and the initialisation of every package linked touch
// about 90 separate 64 KB stretches of the 8.5 MB of code and read-only data. Where a page
// fault is dear, as in a virtual machine that shadows page tables, those faults were the
// largest single cost of a warm get: on the 2-core VM of docs/BENCH.md a page fault costs
// 21 to 34 µs, while MADV_POPULATE_READ maps all 2,185 pages of the image in 0.2 to 0.45 ms
// (docs/BENCH.md has the runs). On a machine where faults are cheap it changes little either
// way. The image's pages are in the page cache already and shared with every other run, so
// mapping them allocates nothing, though they now count in the process's resident size; the
// heap pages are memory the process mostly goes on to use (91 of the 128 in a warm get).
//
// It imports nothing, so the runtime initialises it among the first packages (the Go spec
// orders packages whose imports are done by import path). That is why its system call is a
// stub in assembly, and why it finds the image from the program headers the kernel mapped,
// as the auxiliary vector gives them (the runtime's getAuxv, which it offers to
// golang.org/x/sys), rather than from debug/elf or /proc. It maps only segments of which one
// holds its own code; anything else, and any platform but linux/amd64, and it does nothing.
package prefault
