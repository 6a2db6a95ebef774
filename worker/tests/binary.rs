//! The `worker` binary as operators start it.

use std::process::Command;

#[test]
fn a_bad_setting_stops_the_worker_at_start_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("WORKER_CONCURRENCY", "0")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .expect("run worker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WORKER_CONCURRENCY"), "{stderr}");
}
