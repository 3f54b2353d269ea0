//! The binary's allocator: jemalloc, for Rust and for tree-sitter's C code alike.
//!
//! Measured on this project's workloads (docs/benchmarks.md): 3% fewer instructions and about
//! 6% more rows/s for the scanner (tree-sitter allocates a node per token), and 7-10 µs less
//! CPU per gateway request (glibc malloc/free were 14% of the gateway's profile).

use std::ffi::c_void;

use tikv_jemalloc_sys as jemalloc;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    unsafe { jemalloc::malloc(size) }
}

unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    unsafe { jemalloc::calloc(count, size) }
}

unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    unsafe { jemalloc::realloc(ptr, size) }
}

unsafe extern "C" fn free(ptr: *mut c_void) {
    unsafe { jemalloc::free(ptr) }
}

/// Sends tree-sitter's allocations to jemalloc too. Call first thing in `main`.
pub fn install() {
    // SAFETY: called once, on the main thread, before any tree-sitter object exists; the four
    // functions are one allocator family and return libc-aligned memory.
    unsafe {
        emguard_codescan::set_parser_allocator(Some(emguard_codescan::ParserAllocator {
            malloc,
            calloc,
            realloc,
            free,
        }));
    }
}
