#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    supervisord_receiver_fuzz::http1_reply(data);
});
