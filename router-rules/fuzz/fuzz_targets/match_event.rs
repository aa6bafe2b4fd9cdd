//! A pattern and an event split at the first NUL byte; the compiled matcher
//! must agree with the reference interpreter: see `router_rules::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router_rules::fuzzing::match_event(data));
