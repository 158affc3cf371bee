//! The binaries' edges: exit codes and one-line reasons.

use std::process::Command;

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lb-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"[dataplane]
interfaces = ["lo"]

[[service]]
vip = "192.0.2.10"
port = 80

[[service.real]]
address = "192.0.2.21"
"#;

#[test]
fn check_config_accepts_a_valid_file_and_names_file_line_and_field_of_a_bad_one() {
    let good = temp_config("good", GOOD);
    let out = Command::new(env!("CARGO_BIN_EXE_lbd"))
        .args(["check-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 services, 1 reals)"));

    let bad = temp_config("bad", &format!("{GOOD}weight = 70000\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_lbd"))
        .args(["--config"])
        .arg(&bad)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:10: service[0].real[0].weight", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");
    for path in [good, bad] {
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}

#[test]
fn lbctl_fails_with_one_line_when_lbd_is_not_there_and_names_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["--socket", "/nonexistent/lbd.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("lbctl: cannot reach lbd at /nonexistent/lbd.sock"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["real", "add", "10.0.0.1:80/sctp", "10.0.0.2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<SERVICE>") && stderr.contains("sctp"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["real", "weight", "10.0.0.1:80", "10.0.0.2", "70000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<WEIGHT>") && stderr.contains("70000"),
        "{stderr}"
    );
}
