//! Mission reports as robots send them: arbitrary bytes through the decoder mission-ingest runs
//! (`decode`: contract, validation, partition key), and the fast path against the reference walk.
#![no_main]

use fleet_core::MissionReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the partition key: the robot the rule keyed the record by.
    let (pk, bytes) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("rb-000001", rest),
        Some((_, rest)) => ("", rest),
        None => ("rb-000001", data),
    };
    let _ = MissionReport::from_record(bytes, pk);
    // The typed fast path must agree with the field-by-field walk it stands for.
    let fast = MissionReport::from_json(bytes);
    let walk = MissionReport::from_json_walk(bytes);
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
