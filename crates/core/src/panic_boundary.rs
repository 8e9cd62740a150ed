//! Catches a Rust panic before it can unwind into C (Ruby's VM, or a pthread), where
//! unwinding is undefined behaviour, and keeps its message for the error raised instead.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Runs `work`; a panic comes back as `Err` with the panic's message.
pub fn catch_panic<R>(work: impl FnOnce() -> R) -> Result<R, String> {
    // AssertUnwindSafe: after a panic the work's state is dropped, never looked at again.
    panic::catch_unwind(AssertUnwindSafe(work)).map_err(|payload| panic_message(payload.as_ref()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_passes_through() {
        assert_eq!(catch_panic(|| 6 * 7), Ok(42));
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch_panic(|| -> u8 { panic!("static text") }), Err("static text".to_string()));
        let size = 4096;
        assert_eq!(catch_panic(|| -> u8 { panic!("formatted {size}") }), Err("formatted 4096".to_string()));
    }

    #[test]
    fn a_panic_with_another_payload_still_gives_a_message() {
        let caught = catch_panic(|| -> u8 { panic::panic_any(7_u32) });
        assert_eq!(caught, Err("a panic without a message".to_string()));
    }

    #[test]
    fn an_index_out_of_bounds_is_caught_too() {
        let blocks: Vec<u8> = Vec::new();
        let caught = catch_panic(|| blocks[3]);
        assert!(caught.unwrap_err().contains("index out of bounds"));
    }
}
