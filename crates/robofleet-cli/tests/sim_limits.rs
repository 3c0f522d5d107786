//! `robofleet sim` checks the process's open-file limit before it connects any robot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn a_fleet_larger_than_the_open_file_limit_is_refused_before_connecting() {
    // bash's `ulimit -n` lowers the soft and the hard limit: the simulator cannot raise it. The
    // broker address is a closed port: a run that tried to connect would report connect errors.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' sim --robots 1000 --mode steady --duration 5s --broker mqtt://127.0.0.1:9",
            env!("CARGO_BIN_EXE_robofleet")
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("1000 robots need about 1128 open files"),
        "{stderr}"
    );
    assert!(stderr.contains("the limit is 256"), "{stderr}");
    assert!(stderr.contains("128 robots fit"), "{stderr}");
    assert!(
        !stdout.contains("connected") && !stderr.contains("connect failed"),
        "nothing connected: {stdout}{stderr}"
    );
}
