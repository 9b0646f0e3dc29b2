//! Fuzzes `steadfast_fuzz::grpc_timeout`: see that function for the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| steadfast_fuzz::grpc_timeout(data));
