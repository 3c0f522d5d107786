//! Shadow documents (and anything else on the shadows stream): arbitrary bytes through the
//! decoder shadow-indexer runs (current state only), the full decoder, and the fast path
//! against the reference walk.
#![no_main]

use fleet_core::ShadowRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pk, bytes) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("rb-000001", rest),
        Some((_, rest)) => ("", rest),
        None => ("rb-000001", data),
    };
    if let Ok(record) = ShadowRecord::from_record_current(bytes, pk) {
        // What the indexer does with a decoded record must not panic either.
        let _ = (record.doc_id(), record.external_version());
        let _ = record.into_index_source();
    }
    let fast = ShadowRecord::from_json(bytes);
    let walk = ShadowRecord::from_json_walk(bytes);
    match (&fast, &walk) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "fast path and walk decode differently"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "fast path and walk disagree: fast {:?}, walk {:?}",
            fast.as_ref().map(|_| ()),
            walk.as_ref().map(|_| ())
        ),
    }
});
