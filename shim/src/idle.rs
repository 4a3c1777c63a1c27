//! An idle shim should cost almost nothing: once its container runs, it drops
//! the mappings of its code pages (they stay in the page cache and fault back
//! in when an RPC or an exit wakes the shim) and returns free heap to the
//! kernel. Only the read-only text is dropped: relocated data keeps its
//! private copies.

extern "C" {
    static __executable_start: u8;
    static etext: u8;
}

pub fn shed_pages() {
    // SAFETY: the linker defines both symbols around this binary's text; the
    // range is page-aligned inside our own read-only, private text mapping,
    // which has no private (written) pages, so MADV_DONTNEED only unmaps
    // pages that fault back unchanged from the file.
    unsafe {
        let start = (&raw const __executable_start as usize) & !4095;
        let end = (&raw const etext as usize) & !4095;
        if end > start {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
        libc::malloc_trim(0);
    }
}
