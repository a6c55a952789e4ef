//! The pack's runtime on wasm32 (packs are `no_std`): the allocator, the panic handler and
//! `cabi_realloc`, through which the host hands a call its arguments.
//!
//! The allocator is dlmalloc over the heap the module starts with (`__heap_base` to
//! `__heap_end`, sized by the linker's `--initial-memory`), growing linear memory only past
//! it: a `memory.grow` costs the host a few microseconds, and most calls never need one.
//! A pack has no WASI imports at all: each import is wiring the host repeats on every fresh
//! instance, and a sandboxed pack has no use for stdio, environment or clocks.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::{Cell, UnsafeCell};
use core::ptr;

use crate::alloc_prelude::*;

const PAGE: usize = 65_536;

// `memcmp` and friends from the target's own wasi-libc (shipped with the rustup target): only
// the string routines are linked, none of libc's WASI-using parts.
#[link(name = "c")]
unsafe extern "C" {}

unsafe extern "C" {
    static __heap_base: u8;
    static __heap_end: u8;
}

/// Where dlmalloc gets memory: first the module's own heap, then `memory.grow`.
struct LinearMemory {
    initial_heap_taken: Cell<bool>,
}

// SAFETY: follows dlmalloc's contract: regions are never handed out twice, never released.
unsafe impl dlmalloc::Allocator for LinearMemory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if !self.initial_heap_taken.get() {
            // linker-defined symbols: only their addresses are used
            let (base, end) = (&raw const __heap_base as usize, &raw const __heap_end as usize);
            if end > base && end - base >= size {
                self.initial_heap_taken.set(true);
                return (base as *mut u8, end - base, 0);
            }
        }
        let pages = size.div_ceil(PAGE);
        match wasm32::memory_grow(0, pages) {
            usize::MAX => (ptr::null_mut(), 0, 0),
            previous => ((previous * PAGE) as *mut u8, pages * PAGE, 0),
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    /// A fresh instance's memory past its data, and grown memory, are zero.
    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

struct Heap(SingleThreaded<UnsafeCell<dlmalloc::Dlmalloc<LinearMemory>>>);

impl Heap {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut dlmalloc::Dlmalloc<LinearMemory> {
        // SAFETY: single-threaded, and dlmalloc never re-enters the global allocator.
        unsafe { &mut *self.0.0.get() }
    }
}

// SAFETY: forwards to dlmalloc with the layout's size and alignment.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { self.get().malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { self.get().calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.get().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { self.get().realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

#[global_allocator]
static HEAP: Heap =
    Heap(SingleThreaded(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(LinearMemory {
        initial_heap_taken: Cell::new(false),
    }))));

/// The canonical ABI's allocator: the host calls it to place a call's arguments (strings,
/// lists) in the pack's memory. (wit-bindgen's own, behind its `realloc` feature, is a
/// prebuilt object that a `no_std` cdylib does not link.)
///
/// # Safety
/// Called by the host per the component model's canonical ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a power-of-two alignment and, for a reallocation,
    // the block and size it was given before.
    let new = unsafe {
        if old_len == 0 {
            HEAP.alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            HEAP.realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if new.is_null() {
        wasm32::unreachable()
    }
    new
}

/// A panic tells the host's log what and where, then traps (the host answers 500). A panic
/// while reporting one (say, out of memory) traps at once.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    static REPORTING: SingleThreaded<Cell<bool>> = SingleThreaded(Cell::new(false));
    if !REPORTING.0.replace(true) {
        crate::log::error(&format!("pack panicked: {info}"));
    }
    wasm32::unreachable()
}

/// A static a single-threaded pack instance may share with itself.
struct SingleThreaded<T>(T);

// SAFETY: a pack instance is single-threaded (wasm32-wasip2 without threads).
unsafe impl<T> Sync for SingleThreaded<T> {}
