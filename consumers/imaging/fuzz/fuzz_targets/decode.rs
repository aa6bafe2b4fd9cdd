//! The whole decode path on any input: see `switchyard_imaging::fuzzing`.
//! Run with `scripts/fuzz decode` (stable toolchain).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_imaging::fuzzing::decode(data));
